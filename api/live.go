package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/policy"
)

// Live fans a patient's batches out to the streams watching that patient. A slow watcher
// loses batches (and is told how many) rather than slowing ingest down.
type Live struct {
	mu       sync.Mutex
	watchers map[string]map[*watcher]struct{}
}

type watcher struct {
	ch       chan liveMsg
	dropped  int
	readings bool // false: events only (alarms, alerts, scores), e.g. for an alarm console
}

// liveMsg is a batch of readings, or another event (an alert) with its data.
type liveMsg struct {
	patient string
	batch   *iomt.Batch
	event   string
	data    any
}

// NewLive returns a hub; feed it with Deliver (e.g. from a bus subscription).
func NewLive() *Live { return &Live{watchers: map[string]map[*watcher]struct{}{}} }

// allPatients is the watcher key of streams that follow every patient.
const allPatients = ""

// Deliver hands a batch to the patient's watchers, and to those of every patient, without
// blocking.
func (l *Live) Deliver(_ context.Context, b iomt.Batch) error {
	l.send(b.Patient, liveMsg{patient: b.Patient, batch: &b})
	return nil
}

// Notify sends an event about a patient (such as an alert) to the same streams.
func (l *Live) Notify(patient, event string, data any) {
	l.send(patient, liveMsg{patient: patient, event: event, data: data})
}

func (l *Live) send(patient string, m liveMsg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, key := range [2]string{patient, allPatients} {
		for w := range l.watchers[key] {
			if m.batch != nil && !w.readings {
				continue
			}
			select {
			case w.ch <- m:
			default:
				w.dropped++
			}
		}
	}
}

func (l *Live) watch(patient string, readings bool) *watcher {
	w := &watcher{ch: make(chan liveMsg, 256), readings: readings}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watchers[patient] == nil {
		l.watchers[patient] = map[*watcher]struct{}{}
	}
	l.watchers[patient][w] = struct{}{}
	return w
}

func (l *Live) unwatch(patient string, w *watcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.watchers[patient], w)
	if len(l.watchers[patient]) == 0 {
		delete(l.watchers, patient)
	}
}

func (l *Live) takeDropped(w *watcher) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := w.dropped
	w.dropped = 0
	return n
}

// stream serves a patient's live observations as Server-Sent Events: an "observation" event
// per reading, a "waveform" event per segment, a "cgm-alert" event per CGM alert, a "dropped"
// event if the client fell behind, and a comment every 15 s to keep proxies from closing the
// connection.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		s.storeError(w, r, "patient "+id, err)
		return
	}
	q := r.URL.Query()
	s.serveStream(w, r, id, q.Get("readings") != "false", q.Get("waveforms") != "false")
}

// streamAll follows every patient; waveforms only on request (?waveforms=true), since a ward
// of ECG patches is a lot of data for a ward view that shows numbers. With ?readings=false
// it carries events only: the alarm console of a ward need not receive every reading.
func (s *Server) streamAll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serveStream(w, r, allPatients, q.Get("readings") != "false", q.Get("waveforms") == "true")
}

func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, id string, readings, waveforms bool) {
	fl, ok := w.(http.Flusher)
	if !ok || s.Live == nil {
		writeProblem(w, r, http.StatusNotImplemented, "live streams are not available")
		return
	}
	wt := s.Live.watch(id, readings)
	defer s.Live.unwatch(id, wt)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if id == allPatients {
		fmt.Fprint(w, ": streaming all patients\n\n")
	} else {
		fmt.Fprintf(w, ": streaming patient %s\n\n", id)
	}
	fl.Flush()
	acc := accessFrom(r.Context())
	seen := map[string]bool{}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case m := <-wt.ch:
			// Each message is checked as it goes: a ward stream carries the caller's patients
			// only, readings only to those who may read them (not a carer's summary), and a
			// patient's own stream stops carrying data once access ends (a transfer out, an
			// emergency access run out).
			need := policy.PatientSummary
			if m.batch != nil {
				need = policy.PatientRead
			}
			d := acc.decide(m.patient, need)
			if !d.Allow {
				continue
			}
			if id == allPatients && !seen[m.patient] {
				// The first data of each patient waits for a durable record naming them, so a
				// stream whose node dies has named everyone it showed.
				seen[m.patient] = true
				if err := s.recordStreamPatient(r, m.patient, d.Emergency); err != nil {
					s.log.Error("audit: ward stream ended", "err", err)
					return
				}
				notePatients(r, m.patient)
			}
			if n := s.Live.takeDropped(wt); n > 0 {
				fmt.Fprintf(w, "event: dropped\ndata: {\"batches\":%d}\n\n", n)
			}
			if m.batch == nil {
				writeEvent(w, m.event, m.data)
			} else {
				for _, o := range m.batch.Observations {
					writeEvent(w, "observation", o)
				}
				if waveforms {
					for _, wf := range m.batch.Waveforms {
						writeEvent(w, "waveform", segmentOf(wf))
					}
				}
			}
			if len(wt.ch) > 0 {
				// More is queued: one write for all of it. A ward stream under load would
				// otherwise make a system call per batch, and an alarm queued behind the
				// batches would wait for each of them.
				continue
			}
		}
		fl.Flush()
	}
}

func writeEvent(w http.ResponseWriter, event string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
}
