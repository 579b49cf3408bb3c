package watch

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/news2"
)

// Codes of NEWS2's charted inputs and of the score itself (see the codes catalog).
const (
	ACVPUCode     = "1104441000000107" // charted consciousness, 1 Alert … 5 Unresponsive
	OxygenCode    = "3151-8"           // inhaled oxygen flow rate, L/min; 0 is room air
	NEWS2Code     = "1104051000000101" // NEWS2 total score
	NEWS2Device   = "iomt-news2"       // the device ID NEWS2 scores are stored under
	news2Resample = 15 * time.Minute
)

// news2Inputs are the codes a NEWS2 reads.
var news2Inputs = []string{
	news2.CodeRespRate, news2.CodeSpO2, news2.CodeSaO2, news2.CodeSBP, news2.CodePulse,
	news2.CodePulseOx, news2.CodeTemp, ACVPUCode, OxygenCode,
}

// NEWS2Score is one patient's early warning score as their observations stood at Time.
type NEWS2Score struct {
	Patient    string           `json:"patient"`
	Tenant     string           `json:"tenant,omitempty"`
	Time       time.Time        `json:"time"`
	Assessment news2.Assessment `json:"assessment"`
	// Store is true for a complete score that changed (or has not been stored for 15
	// minutes): it becomes an observation; other assessments are only told.
	Store bool `json:"-"`
}

// NEWS2 scores each patient from their latest observations as they arrive, with a freshness
// limit per parameter: a missing or stale parameter makes the assessment incomplete (saying
// which), never a score of 0.
type NEWS2 struct {
	// Owns, if set, says whether this node still owns the patient's partition.
	Owns  func(patient string) bool
	fresh news2.Freshness
	tell  func(NEWS2Score)

	mu   sync.Mutex
	pats map[string]*news2State
}

type news2State struct {
	tenant   string
	latest   map[string]iomt.Observation
	taken    time.Time // newest reading time
	received time.Time // when it arrived
	result   *news2.Result
	stored   time.Time
	gaps     string // the last incomplete assessment's missing and stale parameters
}

// NewNEWS2 returns a scorer that calls tell for every assessment worth telling: a complete
// score that changed, or a change in what is missing.
func NewNEWS2(fresh news2.Freshness, tell func(NEWS2Score)) *NEWS2 {
	if fresh == nil {
		fresh = news2.DefaultFreshness()
	}
	return &NEWS2{fresh: fresh, tell: tell, pats: map[string]*news2State{}}
}

// Deliver is the bus handler.
func (w *NEWS2) Deliver(_ context.Context, b iomt.Batch) error {
	if b.Device == NEWS2Device {
		return nil // our own scores coming back
	}
	var newest time.Time
	w.mu.Lock()
	s := w.pats[b.Patient]
	for _, o := range b.Observations {
		if !slices.Contains(news2Inputs, o.Code) {
			continue
		}
		if s == nil {
			s = &news2State{tenant: b.Tenant, latest: map[string]iomt.Observation{}}
			w.pats[b.Patient] = s
		}
		if cur, ok := s.latest[o.Code]; !ok || o.Time.After(cur.Time) {
			s.latest[o.Code] = o
		}
		if o.Time.After(newest) {
			newest = o.Time
		}
	}
	if newest.IsZero() {
		w.mu.Unlock()
		return nil
	}
	if newest.After(s.taken) {
		s.taken, s.received = newest, time.Now()
	}
	sc, ok := w.assess(b.Patient, s, s.taken)
	w.mu.Unlock()
	if ok && w.tell != nil {
		w.tell(sc)
	}
	return nil
}

// assess scores s at now and says whether the outcome is worth telling.
func (w *NEWS2) assess(patient string, s *news2State, now time.Time) (NEWS2Score, bool) {
	in := news2.Inputs{}
	for code, o := range s.latest {
		switch code {
		case ACVPUCode:
			in.ACVPU, in.ACVPUTime = news2.ACVPU(o.Value), o.Time
		case OxygenCode:
			in.Oxygen, in.OxygenTime = o.Value > 0, o.Time
		default:
			in.Observations = append(in.Observations, o)
		}
	}
	a, err := news2.Assess(now, in, w.fresh)
	if err != nil {
		// A reading the chart cannot score (out of range) counts as missing, not as 0.
		a = news2.Assessment{Missing: []news2.Param{"invalid: " + news2.Param(err.Error())}, Used: a.Used, Partial: a.Partial}
	}
	sc := NEWS2Score{Patient: patient, Tenant: s.tenant, Time: now, Assessment: a}
	if a.Result == nil {
		gaps := gapsOf(a)
		changed := gaps != s.gaps || s.result != nil
		s.gaps, s.result = gaps, nil
		return sc, changed
	}
	r := *a.Result
	changed := s.result == nil || s.result.Total != r.Total || s.result.Band != r.Band
	if changed || now.Sub(s.stored) >= news2Resample {
		s.result, s.stored, s.gaps = &r, now, ""
		sc.Store = true
		return sc, true
	}
	return sc, false
}

func gapsOf(a news2.Assessment) string {
	var parts []string
	for _, p := range a.Missing {
		parts = append(parts, "missing "+string(p))
	}
	for p := range a.Stale {
		parts = append(parts, "stale "+string(p))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Tick re-assesses every patient on their own clock (newest reading time plus the time since
// it arrived), so a parameter that goes stale makes the score incomplete even if nothing
// arrives, and forgets patients this node no longer owns.
func (w *NEWS2) Tick(now time.Time) {
	var out []NEWS2Score
	w.mu.Lock()
	for p, s := range w.pats {
		if w.Owns != nil && !w.Owns(p) {
			delete(w.pats, p)
			continue
		}
		if sc, ok := w.assess(p, s, s.taken.Add(now.Sub(s.received))); ok {
			out = append(out, sc)
		}
	}
	w.mu.Unlock()
	if w.tell != nil {
		for _, sc := range out {
			w.tell(sc)
		}
	}
}

// Run calls Tick every interval until ctx ends.
func (w *NEWS2) Run(ctx context.Context, interval time.Duration) { every(ctx, interval, w.Tick) }
