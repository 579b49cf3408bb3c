// Package watch runs the streaming analytics on live data: bus consumers that keep one state
// machine per patient and report what they find. The analytics themselves (package
// analytics/...) do no I/O; this package feeds them from the bus and hands their findings on.
package watch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
)

// CGMCode is interstitial glucose as CGMs report it (codes catalog).
const CGMCode = "99504-3"

// recentAlerts is how many alerts are kept per patient for the API.
const recentAlerts = 100

// CGM raises each patient's CGM alerts (urgent low, low, high, urgent high, rising and
// falling fast, no data, predicted low) from their readings as they arrive on the bus.
type CGM struct {
	settings glucose.Settings
	notify   func(patient string, a glucose.Alert)
	log      *slog.Logger

	mu       sync.Mutex
	monitors map[string]*glucose.Monitor
	recent   map[string][]glucose.Alert
	last     map[string]arrival
	now      func() time.Time
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
	return &CGM{settings: s, notify: notify, log: log, monitors: map[string]*glucose.Monitor{},
		recent: map[string][]glucose.Alert{}, last: map[string]arrival{}, now: time.Now}, nil
}

// Deliver is the bus handler: it feeds the batch's CGM readings to the patient's monitor.
func (w *CGM) Deliver(_ context.Context, b iomt.Batch) error {
	var raised []glucose.Alert
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
		if l := w.last[o.Patient]; o.Time.After(l.taken) {
			w.last[o.Patient] = arrival{o.Time, w.now()}
		}
		for _, a := range m.Observe(glucose.Reading{Time: o.Time, MgdL: o.Value}) {
			w.remember(o.Patient, a)
			raised = append(raised, a)
		}
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
		l := w.last[p]
		as := m.Tick(l.taken.Add(now.Sub(l.received)))
		for _, a := range as {
			w.remember(p, a)
		}
		if len(as) > 0 {
			all = append(all, pa{p, as})
		}
	}
	w.mu.Unlock()
	for _, x := range all {
		w.tell(x.patient, x.alerts)
	}
}

// Run calls Tick every interval until ctx ends.
func (w *CGM) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.Tick(now)
		}
	}
}

// Alerts returns the patient's most recent alerts, oldest first.
func (w *CGM) Alerts(patient string) []glucose.Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]glucose.Alert(nil), w.recent[patient]...)
}

func (w *CGM) remember(patient string, a glucose.Alert) {
	r := append(w.recent[patient], a)
	if len(r) > recentAlerts {
		r = r[len(r)-recentAlerts:]
	}
	w.recent[patient] = r
}

func (w *CGM) tell(patient string, as []glucose.Alert) {
	for _, a := range as {
		w.log.Info("cgm alert", "patient", patient, "kind", string(a.Kind), "time", a.Time)
		if w.notify != nil {
			w.notify(patient, a)
		}
	}
}
