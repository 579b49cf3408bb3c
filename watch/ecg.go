package watch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/ecg"
)

// ECGLeads are the waveform codes the rhythm monitor reads (codes catalog): one lead is
// enough for rhythm, and lead II is what patches and monitors send by default.
var ecgLeads = map[string]bool{"MDC_ECG_ELEC_POTL_II": true, "MDC_ECG_ELEC_POTL_I": true, "MDC_ECG_ELEC_POTL_V5": true}

// gapTolerance is how far a segment may start from where the previous one ended before the
// monitor restarts: a longer gap would splice two stretches of signal into a false beat.
const gapTolerance = 200 * time.Millisecond

// Rhythm is a rhythm or signal-quality episode of a patient's ECG as the live views hear it.
type Rhythm struct {
	Patient string    `json:"patient"`
	Device  string    `json:"device"`
	Kind    string    `json:"kind"`   // af, bradycardia, tachycardia, pause, asystole, vf, lead-off, saturation, noise
	State   string    `json:"state"`  // started or ended
	Active  bool      `json:"active"` // State == "started", as alarm rules read it
	Onset   time.Time `json:"onset"`
	Offset  time.Time `json:"offset,omitzero"` // when it ended
}

// ECG runs the streaming rhythm monitor (analytics/ecg) on each patient's ECG as it arrives
// on the bus and tells when episodes (AF, brady- and tachycardia, pause, asystole, VF, lead-off,
// noise) start and end.
type ECG struct {
	// Owns, if set, says whether this node still owns the patient's partition; Forget drops
	// the monitors of patients it does not own, so a handed-back patient starts clean.
	Owns func(patient string) bool

	notify func(Rhythm)
	log    *slog.Logger

	mu    sync.Mutex
	leads map[leadKey]*lead
}

type leadKey struct{ patient, device, code string }

type lead struct {
	m      *ecg.Monitor
	start  time.Time     // time of the monitor's sample 0
	period time.Duration // sample period
	next   time.Time     // where the next segment should start
}

// NewECG returns a watcher; notify hears every episode start and end.
func NewECG(notify func(Rhythm), log *slog.Logger) *ECG {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ECG{notify: notify, log: log, leads: map[leadKey]*lead{}}
}

// Deliver is the bus handler.
func (w *ECG) Deliver(_ context.Context, b iomt.Batch) error {
	var told []Rhythm
	w.mu.Lock()
	for _, wf := range b.Waveforms {
		if !ecgLeads[wf.Code] || wf.Period <= 0 || len(wf.Samples) == 0 {
			continue
		}
		k := leadKey{wf.Patient, wf.Device, wf.Code}
		l := w.leads[k]
		gap := l != nil && (wf.Period != l.period || absDur(wf.Start.Sub(l.next)) > gapTolerance)
		if l == nil || gap {
			fs := float64(time.Second) / float64(wf.Period)
			m, err := ecg.NewMonitor(ecg.DefaultConfig(fs))
			if err != nil {
				// A rate the detector does not take (outside 125–1000 Hz): nothing to analyse.
				w.log.Debug("ecg monitor", "device", wf.Device, "err", err)
				continue
			}
			if gap {
				told = append(told, w.flush(k, l)...)
			}
			l = &lead{m: m, start: wf.Start, period: wf.Period}
			w.leads[k] = l
		}
		x := make([]float64, len(wf.Samples))
		for i, s := range wf.Samples {
			x[i] = float64(s) * wf.Scale // the catalog's canonical ECG unit is mV, as the monitor wants
		}
		told = append(told, w.episodes(k, l, l.m.Process(x))...)
		l.next = wf.End()
	}
	w.mu.Unlock()
	for _, r := range told {
		w.notify(r)
	}
	return nil
}

// Forget drops the monitors of patients this node no longer owns; call it now and then.
func (w *ECG) Forget() {
	if w.Owns == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.leads {
		if !w.Owns(k.patient) {
			delete(w.leads, k)
		}
	}
}

// Run calls Forget every interval until ctx ends.
func (w *ECG) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(time.Time) { w.Forget() })
}

// flush closes what a lead's monitor has open, at the end of its signal. w.mu is held.
func (w *ECG) flush(k leadKey, l *lead) []Rhythm { return w.episodes(k, l, l.m.Flush()) }

func (w *ECG) episodes(k leadKey, l *lead, out ecg.Output) []Rhythm {
	at := func(sample int64) time.Time { return l.start.Add(time.Duration(sample) * l.period) }
	var rs []Rhythm
	for _, e := range out.Started {
		rs = append(rs, Rhythm{Patient: k.patient, Device: k.device, Kind: e.Kind.String(), State: "started", Active: true, Onset: at(e.Onset)})
	}
	for _, e := range out.Episodes {
		rs = append(rs, Rhythm{Patient: k.patient, Device: k.device, Kind: e.Kind.String(), State: "ended", Onset: at(e.Onset), Offset: at(e.Offset)})
	}
	return rs
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
