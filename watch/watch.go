// Package watch runs the streaming analytics on live data: bus consumers that keep one state
// machine per patient and report what they find. The analytics themselves (package
// analytics/...) do no I/O; this package feeds them from the bus and hands their findings on.
package watch

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
)

// CGMCode is interstitial glucose as CGMs report it (codes catalog).
const CGMCode = "99504-3"

// recentAlerts is how many alerts are kept per patient for the API.
const recentAlerts = 100

// DefaultLimitsTTL is how long the CGM watcher trusts a patient's alert limits before
// reading the registry again.
const DefaultLimitsTTL = time.Minute

// CGM raises each patient's CGM alerts (urgent low, low, high, urgent high, rising and
// falling fast, no data, predicted low) from their readings as they arrive on the bus.
// Each patient is judged on the limits of their registry record (iomt.Patient.CGMLimits),
// else on the watcher's settings; the limits are read again once LimitsTTL old, on the
// patient's next reading.
type CGM struct {
	settings glucose.Settings
	notify   func(patient string, a glucose.Alert)
	log      *slog.Logger
	limits   *recordCache[iomt.GlucoseLimits]

	// Owns, if set, says whether this node still owns the patient's partition; Tick forgets
	// patients it no longer owns, so a patient handed to another node raises no "no data".
	Owns func(patient string) bool
	// Patients, if set, is where each patient's CGM limits are read; nil judges everyone on
	// the watcher's settings.
	Patients PatientReader
	// LimitsTTL is how long limits read from Patients are used (DefaultLimitsTTL if zero).
	LimitsTTL time.Duration

	mu       sync.Mutex
	monitors map[string]*glucose.Monitor
	last     map[string]arrival
	now      func() time.Time
}

// Recent keeps each patient's latest alerts for the API.
type Recent struct {
	mu sync.Mutex
	m  map[string][]glucose.Alert
}

// NewRecent returns an empty alert list.
func NewRecent() *Recent { return &Recent{m: map[string][]glucose.Alert{}} }

// Add records an alert, forgetting the oldest beyond the last 100 of the patient.
func (r *Recent) Add(patient string, a glucose.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := append(r.m[patient], a)
	if len(l) > recentAlerts {
		l = l[len(l)-recentAlerts:]
	}
	r.m[patient] = l
}

// Alerts returns the patient's most recent alerts, oldest first.
func (r *Recent) Alerts(patient string) []glucose.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]glucose.Alert(nil), r.m[patient]...)
}

// arrival is when the newest reading of a patient was taken and when it reached us.
type arrival struct{ taken, received time.Time }

// NewCGM returns a watcher with the given thresholds for every patient; notify, if not nil,
// hears each alert as it is raised.
func NewCGM(s glucose.Settings, notify func(patient string, a glucose.Alert), log *slog.Logger) (*CGM, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limits := newRecordCache("CGM limits", func(p iomt.Patient) (iomt.GlucoseLimits, error) {
		return p.CGMLimits, iomt.CheckGlucoseLimits(p.CGMLimits)
	}, iomt.GlucoseLimits{})
	return &CGM{settings: s, notify: notify, log: log, limits: limits, monitors: map[string]*glucose.Monitor{},
		last: map[string]arrival{}, now: time.Now}, nil
}

// applyLimits sets the monitor's thresholds to the patient's limits, or to the watcher's
// settings where the patient has none.
func (w *CGM) applyLimits(patient string, m *glucose.Monitor) {
	l, _ := w.limits.get(patient)
	if l.IsZero() {
		l = w.settings.GlucoseLimits
	}
	if m.Settings().GlucoseLimits == l {
		return
	}
	if err := m.SetThresholds(l); err != nil {
		// Checked by the stores; limits inconsistent with the watcher's other settings.
		w.log.Warn("cgm: the patient's limits cannot be used; keeping the current ones", "patient", patient, "err", err)
		return
	}
	w.log.Info("cgm: alert limits", "patient", patient, "urgentLow", l.UrgentLow, "low", l.Low, "high", l.High, "urgentHigh", l.UrgentHigh)
}

// Deliver is the bus handler: it feeds the batch's CGM readings to the patient's monitor.
func (w *CGM) Deliver(ctx context.Context, b iomt.Batch) error {
	if !slices.ContainsFunc(b.Observations, func(o iomt.Observation) bool { return o.Code == CGMCode }) {
		return nil // no registry read for a batch without CGM readings
	}
	ttl := w.LimitsTTL
	if ttl <= 0 {
		ttl = DefaultLimitsTTL
	}
	w.limits.refresh(ctx, w.Patients, b.Patient, w.now(), ttl, w.log)
	var raised []glucose.Alert
	applied := "" // the patient whose limits this batch has applied: once, not per reading
	w.mu.Lock()
	for _, o := range b.Observations {
		if o.Code != CGMCode {
			continue
		}
		m := w.monitors[o.Patient]
		if m == nil {
			var err error
			if m, err = glucose.NewMonitor(w.settings); err != nil {
				w.mu.Unlock()
				return err
			}
			w.monitors[o.Patient] = m
		}
		if o.Patient != applied {
			w.applyLimits(o.Patient, m)
			applied = o.Patient
		}
		if l := w.last[o.Patient]; o.Time.After(l.taken) {
			w.last[o.Patient] = arrival{o.Time, w.now()}
		}
		raised = append(raised, m.Observe(glucose.Reading{Time: o.Time, MgdL: o.Value})...)
	}
	w.mu.Unlock()
	w.tell(b.Patient, raised)
	return nil
}

// Tick evaluates the no-data alerts of every patient with a CGM; call it every minute or so.
// "No data" is judged by arrival: a patient's clock is taken to be the time of their newest
// reading plus the time since it arrived, so a device (or gateway) catching up with stored
// readings is not "stale" while its data keeps coming.
func (w *CGM) Tick(now time.Time) {
	type pa struct {
		patient string
		alerts  []glucose.Alert
	}
	var all []pa
	w.mu.Lock()
	for p, m := range w.monitors {
		if w.Owns != nil && !w.Owns(p) {
			delete(w.monitors, p)
			delete(w.last, p)
			w.limits.forget(p)
			continue
		}
		l := w.last[p]
		if as := m.Tick(l.taken.Add(now.Sub(l.received))); len(as) > 0 {
			all = append(all, pa{p, as})
		}
	}
	w.mu.Unlock()
	for _, x := range all {
		w.tell(x.patient, x.alerts)
	}
}

// Run calls Tick every interval until ctx ends.
func (w *CGM) Run(ctx context.Context, interval time.Duration) { every(ctx, interval, w.Tick) }

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

func (w *CGM) tell(patient string, as []glucose.Alert) {
	for _, a := range as {
		w.log.Info("cgm alert", "patient", patient, "kind", string(a.Kind), "time", a.Time)
		if w.notify != nil {
			w.notify(patient, a)
		}
	}
}
