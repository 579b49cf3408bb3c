package watch

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/news2"
	"github.com/iomt/iomt/codes"
)

// Codes of NEWS2's charted inputs and of the score itself (see the codes catalog).
const (
	ACVPUCode     = "1104441000000107" // charted consciousness, 1 Alert … 5 Unresponsive
	OxygenCode    = "3151-8"           // inhaled oxygen flow rate, L/min; 0 is room air
	NEWS2Code     = "1104051000000101" // NEWS2 total score
	NEWS2Device   = "iomt-news2"       // the device ID NEWS2 scores are stored under
	news2Resample = 15 * time.Minute

	// DefaultScaleTTL is how long the scorer trusts a patient's SpO2 scale before reading
	// the registry again (registryRetry after a failed read).
	DefaultScaleTTL = time.Minute
)

// ParamSpO2Scale names the patient's SpO2 scale in an assessment's missing parameters when
// the registry could not say which it is: the scorer does not guess (scale 1 is not the safe
// side for a scale-2 patient on oxygen, whom it would score 0 at a saturation of 97 %).
const ParamSpO2Scale news2.Param = "spo2Scale"

// PatientReader reads patients from the registry (iomt.Registry has it).
type PatientReader interface {
	Patient(ctx context.Context, id string) (iomt.Patient, error)
}

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
	// Scale is the SpO2 scale the patient was scored on (1 or 2); 0 when it was unknown.
	Scale news2.Scale `json:"scale"`
	// Store is true for a complete score that changed (or has not been stored for 15
	// minutes): it becomes an observation; other assessments are only told.
	Store bool `json:"-"`
}

// NEWS2 scores each patient from their latest observations as they arrive, with a freshness
// limit per parameter: a missing or stale parameter makes the assessment incomplete (saying
// which), never a score of 0.
//
// Each patient is scored on the SpO2 scale of their registry record (iomt.Patient.SpO2Scale).
// The scorer caches it and reads it again once it is ScaleTTL old, on the next batch or the
// next Run tick, whichever comes first. A time limit rather than a "patient updated" event:
// events are at most once, the scale can be written through the REST API, FHIR or SQL on any
// node, and a re-read per patient per minute costs nothing, so the limit alone is both
// simpler and always right within TTL plus one tick (two minutes at most by default), which
// is quick for a setting prescribed once per admission.
type NEWS2 struct {
	// Owns, if set, says whether this node still owns the patient's partition.
	Owns func(patient string) bool
	// Patients, if set, is where each patient's SpO2 scale is read; nil scores everyone on
	// scale 1.
	Patients PatientReader
	// ScaleTTL is how long a scale read from Patients is used (DefaultScaleTTL if zero).
	ScaleTTL time.Duration
	// Log hears failed registry reads (discarded if nil).
	Log *slog.Logger

	fresh news2.Freshness
	tell  func(NEWS2Score)
	now   func() time.Time // wall clock of the scale cache; tests replace it

	mu     sync.Mutex
	pats   map[string]*news2State
	scales *recordCache[news2.Scale] // 0 while unknown (never read successfully)
}

type news2State struct {
	tenant   string
	latest   map[string]iomt.Observation
	taken    time.Time // newest reading time
	received time.Time // when it arrived
	result   *news2.Result
	stored   time.Time
	// The last incomplete assessment's missing and (sorted) stale parameters.
	missing, stale []news2.Param
	inputs         []iomt.Observation // Assess's input buffer, reused
	scale          news2.Scale        // the scale of result
}

// NewNEWS2 returns a scorer that calls tell for every assessment worth telling: a complete
// score that changed, or a change in what is missing.
func NewNEWS2(fresh news2.Freshness, tell func(NEWS2Score)) *NEWS2 {
	if fresh == nil {
		fresh = news2.DefaultFreshness()
	}
	return &NEWS2{fresh: fresh, tell: tell, now: time.Now, pats: map[string]*news2State{}, scales: newRecordCache("SpO2 scale", spo2Scale, news2.Scale1)}
}

// spo2Scale is the scale a patient's record puts them on: 0 (not set) is scale 1.
func spo2Scale(p iomt.Patient) (news2.Scale, error) {
	if err := iomt.CheckSpO2Scale(p.SpO2Scale); err != nil {
		return 0, err
	}
	if p.SpO2Scale == 0 {
		return news2.Scale1, nil
	}
	return news2.Scale(p.SpO2Scale), nil
}

// Deliver is the bus handler.
func (w *NEWS2) Deliver(ctx context.Context, b iomt.Batch) error {
	if b.Device == NEWS2Device {
		return nil // our own scores coming back
	}
	if !slices.ContainsFunc(b.Observations, func(o iomt.Observation) bool { return slices.Contains(news2Inputs, o.Code) }) {
		return nil // nothing to score (an ECG or CGM batch): no registry read either
	}
	// The registry is read outside the lock: other partitions' batches must not wait on it.
	w.refreshScale(ctx, b.Patient)
	untrusted := untrustedOximeters(b)
	var newest time.Time
	w.mu.Lock()
	s := w.pats[b.Patient]
	for _, o := range b.Observations {
		if !slices.Contains(news2Inputs, o.Code) {
			continue
		}
		if untrusted[o.Device] && (o.Code == news2.CodeSpO2 || o.Code == news2.CodePulseOx) {
			continue // the oximeter itself says this reading is not to be trusted
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

// untrustedOximeters are the devices whose own status, sent in the batch, says their
// readings cannot be trusted (probe off or a poor signal, codes.OximeterQuality): NEWS2 does
// not score their SpO2 and pulse rate, as the alarm engine does not judge them.
func untrustedOximeters(b iomt.Batch) map[string]bool {
	var out map[string]bool
	for _, o := range b.Observations {
		if off, poor, _ := codes.OximeterQualityOf(o); off || poor {
			if out == nil {
				out = map[string]bool{}
			}
			out[o.Device] = true
		}
	}
	return out
}

// refreshScale reads the patient's SpO2 scale from the registry if the cached one is due.
// A patient the registry does not know is on scale 1, the chart's default; a failed read
// keeps the cached scale (or leaves it unknown) and is tried again soon.
func (w *NEWS2) refreshScale(ctx context.Context, patient string) {
	w.scales.refresh(ctx, w.Patients, patient, w.now(), w.scaleTTL(), w.Log)
}

func (w *NEWS2) scaleTTL() time.Duration {
	if w.ScaleTTL > 0 {
		return w.ScaleTTL
	}
	return DefaultScaleTTL
}

// assess scores s at now and says whether the outcome is worth telling. A change of scale is
// worth telling (and storing) even when the total stays the same, so that what was last told
// says which scale the score stands on.
func (w *NEWS2) assess(patient string, s *news2State, now time.Time) (NEWS2Score, bool) {
	scale, _ := w.scales.get(patient)
	// The inputs reuse the patient's buffer: Assess keeps no reference to them, and this runs
	// at every SpO2 reading.
	in := news2.Inputs{Scale: scale, Observations: s.inputs[:0]}
	defer func() { s.inputs = in.Observations[:0] }()
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
	if scale == 0 {
		// Assess scored scale 1 for want of a scale. Without the registry's word that is a
		// guess, so the score is withheld and the SpO2 sub-score leaves the partial sum,
		// which must stay a lower bound whichever scale the patient is on.
		if u, ok := a.Used[news2.ParamSpO2]; ok && a.Stale[news2.ParamSpO2] == "" {
			a.Partial -= news2.SpO2Score(u.Value, news2.Scale1, in.Oxygen)
		}
		a.Missing, a.Result, a.Complete = append(a.Missing, ParamSpO2Scale), nil, false
	}
	sc := NEWS2Score{Patient: patient, Tenant: s.tenant, Time: now, Assessment: a, Scale: scale}
	if a.Result == nil {
		changed := s.setGaps(a) || s.result != nil
		s.result = nil
		return sc, changed
	}
	r := *a.Result
	changed := s.result == nil || s.result.Total != r.Total || s.result.Band != r.Band || s.scale != scale
	if changed || now.Sub(s.stored) >= news2Resample {
		s.result, s.stored, s.missing, s.stale, s.scale = &r, now, nil, nil, scale
		sc.Store = true
		return sc, true
	}
	return sc, false
}

// setGaps records what a's assessment lacks and says whether that changed. It runs for every
// reading of a patient whose score is incomplete (a ward of oximeters only), so it allocates
// only when the gaps change.
func (s *news2State) setGaps(a news2.Assessment) bool {
	var buf [16]news2.Param
	stale := buf[:0]
	for p := range a.Stale {
		stale = append(stale, p)
	}
	slices.Sort(stale)
	if slices.Equal(s.missing, a.Missing) && slices.Equal(s.stale, stale) {
		return false
	}
	s.missing, s.stale = slices.Clone(a.Missing), slices.Clone(stale)
	return true
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
			w.scales.forget(p)
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

// RefreshScales reads again the SpO2 scales that are due, so that a changed scale rescores a
// patient even while no reading arrives. Run calls it before every Tick.
func (w *NEWS2) RefreshScales(ctx context.Context) {
	w.mu.Lock()
	ps := make([]string, 0, len(w.pats))
	for p := range w.pats {
		ps = append(ps, p)
	}
	w.mu.Unlock()
	for _, p := range ps {
		if ctx.Err() != nil {
			return
		}
		w.refreshScale(ctx, p)
	}
}

// Run refreshes the due SpO2 scales and calls Tick every interval until ctx ends.
func (w *NEWS2) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(now time.Time) {
		w.RefreshScales(ctx)
		w.Tick(now)
	})
}
