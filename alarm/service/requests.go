package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
)

// request is a lifecycle operation sent to the node owning the patient.
type request struct {
	ID      string         `json:"id"`
	Op      string         `json:"op"` // acknowledge, resolve, silence
	Alarm   string         `json:"alarm,omitempty"`
	Who     string         `json:"who"`
	Why     string         `json:"why"`
	Silence *alarm.Silence `json:"silence,omitempty"`
}

// requestReply is the owner's answer.
type requestReply struct {
	Request string       `json:"request"`
	Alarms  []iomt.Alarm `json:"alarms,omitempty"`
	Error   string       `json:"error,omitempty"`
	Kind    string       `json:"kind,omitempty"` // not-found, invalid-transition, invalid
}

// Acknowledge acknowledges an active alarm on behalf of who.
func (s *Service) Acknowledge(ctx context.Context, id, who, why string) (iomt.Alarm, error) {
	as, err := s.do(ctx, request{Op: "acknowledge", Alarm: id, Who: who, Why: why})
	if err != nil {
		return iomt.Alarm{}, err
	}
	return as[0], nil
}

// Resolve resolves an alarm whose condition has cleared.
func (s *Service) Resolve(ctx context.Context, id, who, why string) (iomt.Alarm, error) {
	as, err := s.do(ctx, request{Op: "resolve", Alarm: id, Who: who, Why: why})
	if err != nil {
		return iomt.Alarm{}, err
	}
	return as[0], nil
}

// Silence pauses notifications of the alarms in scope (one alarm, or a patient's, optionally
// narrowed to a rule or device) and returns the alarms it silenced now.
func (s *Service) Silence(ctx context.Context, sil alarm.Silence) ([]iomt.Alarm, error) {
	return s.do(ctx, request{Op: "silence", Alarm: sil.Alarm, Who: sil.Who, Why: sil.Why, Silence: &sil})
}

// do runs a request here if this node owns the patient, else on the owner.
func (s *Service) do(ctx context.Context, r request) ([]iomt.Alarm, error) {
	patient := ""
	if r.Silence != nil {
		patient = r.Silence.Patient
	}
	if r.Alarm != "" {
		a, err := s.cfg.Store.Alarm(ctx, r.Alarm)
		if err != nil {
			return nil, err
		}
		if a.State == iomt.AlarmResolved {
			return nil, fmt.Errorf("%w: alarm %s was resolved at %s", alarm.ErrInvalidTransition, a.ID, a.Resolved.Format(time.RFC3339))
		}
		if patient != "" && patient != a.Patient {
			return nil, fmt.Errorf("%w: alarm %s belongs to patient %s, not %s", iomt.ErrInvalid, a.ID, a.Patient, patient)
		}
		patient = a.Patient
		if r.Silence != nil {
			r.Silence.Patient = ""
		}
	}
	if patient == "" {
		return nil, fmt.Errorf("%w: a silence needs an alarm or a patient", iomt.ErrInvalid)
	}
	if s.owns(patient) {
		if err := s.ensure(ctx, s.partition(patient)); err != nil {
			return nil, err
		}
		return s.apply(ctx, r)
	}
	return s.forward(ctx, patient, r)
}

// apply performs a request on this node's engine and stores and publishes the changes.
func (s *Service) apply(ctx context.Context, r request) ([]iomt.Alarm, error) {
	var chs []alarm.Change
	var sils []iomt.AlarmSilence
	switch r.Op {
	case "acknowledge", "resolve":
		f := s.e.Acknowledge
		if r.Op == "resolve" {
			f = s.e.Resolve
		}
		ch, err := f(r.Alarm, r.Who, r.Why)
		if err != nil {
			return nil, err
		}
		chs = []alarm.Change{ch}
	case "silence":
		if r.Silence == nil {
			return nil, fmt.Errorf("%w: a silence request without its silence", iomt.ErrInvalid)
		}
		if r.Silence.Alarm == "" {
			// It also covers alarms raised later, so it is stored before the answer: a restart
			// or a handover must not end it early.
			tenant, err := s.tenant(ctx, r.Silence.Patient)
			if err != nil {
				return nil, err
			}
			sils = append(sils, iomt.AlarmSilence{Tenant: tenant, Patient: r.Silence.Patient, Rule: r.Silence.Rule,
				Device: r.Silence.Device, Until: r.Silence.Until.Truncate(time.Millisecond), Who: r.Silence.Who,
				Why: r.Silence.Why, Created: s.cfg.Clock()})
		}
		var err error
		if chs, err = s.e.Silence(*r.Silence); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", iomt.ErrInvalid, r.Op)
	}
	if err := s.handleWait(ctx, chs, sils...); err != nil {
		return nil, err
	}
	out := make([]iomt.Alarm, len(chs))
	for i, ch := range chs {
		out[i] = ch.Alarm
	}
	return out, nil
}

// forward sends the request to the owner over the events bus and waits for its reply.
func (s *Service) forward(ctx context.Context, patient string, r request) ([]iomt.Alarm, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	r.ID = "rq_" + hex.EncodeToString(b[:])
	wait := make(chan requestReply, 1)
	s.mu.Lock()
	s.waiting[r.ID] = wait
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, r.ID)
		s.mu.Unlock()
	}()
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Events.PublishEvent(ctx, iomt.Event{Patient: patient, Kind: eventRequest, Time: s.cfg.Clock(), Data: data}); err != nil {
		return nil, fmt.Errorf("alarm service: forward %s: %w", r.Op, err)
	}
	t := time.NewTimer(s.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("%w (patient %s, after %s)", ErrUnavailable, patient, s.cfg.RequestTimeout)
	case rep := <-wait:
		if rep.Error == "" {
			return rep.Alarms, nil
		}
		switch rep.Kind {
		case "not-found":
			return nil, fmt.Errorf("%w: %s", iomt.ErrNotFound, rep.Error)
		case "invalid-transition":
			return nil, fmt.Errorf("%w: %s", alarm.ErrInvalidTransition, rep.Error)
		case "invalid":
			return nil, fmt.Errorf("%w: %s", iomt.ErrInvalid, rep.Error)
		}
		return nil, errors.New(rep.Error)
	}
}

// serveRequest answers a forwarded request if this node owns the patient.
func (s *Service) serveRequest(ctx context.Context, ev iomt.Event) {
	if ev.Patient == "" || !s.owns(ev.Patient) {
		return
	}
	var r request
	if err := json.Unmarshal(ev.Data, &r); err != nil || r.ID == "" {
		s.log.Warn("alarm request unreadable", "err", err)
		return
	}
	if err := s.ensure(ctx, s.partition(ev.Patient)); err != nil {
		s.log.Warn("alarm request", "err", err)
		return
	}
	if r.Silence != nil && r.Silence.Alarm == "" {
		r.Silence.Patient = ev.Patient
	}
	rep := requestReply{Request: r.ID}
	as, err := s.apply(ctx, r)
	switch {
	case err == nil:
		rep.Alarms = as
	case errors.Is(err, iomt.ErrNotFound) || errors.Is(err, alarm.ErrNotFound):
		rep.Error, rep.Kind = err.Error(), "not-found"
	case errors.Is(err, alarm.ErrInvalidTransition):
		rep.Error, rep.Kind = err.Error(), "invalid-transition"
	case errors.Is(err, iomt.ErrInvalid):
		rep.Error, rep.Kind = err.Error(), "invalid"
	default:
		rep.Error = err.Error()
	}
	data, err := json.Marshal(rep)
	if err == nil {
		err = s.cfg.Events.PublishEvent(ctx, iomt.Event{Patient: ev.Patient, Kind: eventReply, Time: s.cfg.Clock(), Data: data})
	}
	if err != nil {
		s.log.Warn("alarm reply not sent", "request", r.ID, "err", err)
	}
}

// tenant is the tenant of a patient, for the silence stored under it.
func (s *Service) tenant(ctx context.Context, patient string) (string, error) {
	if t, ok := s.e.Tenant(patient); ok {
		return t, nil
	}
	if s.cfg.Tenant == nil {
		return iomt.DefaultTenant, nil
	}
	t, err := s.cfg.Tenant(ctx, patient)
	if err != nil {
		return "", fmt.Errorf("silence: patient %s: %w", patient, err)
	}
	return t, nil
}
