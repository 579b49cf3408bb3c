// Package service runs the alarm engine inside a node: it feeds the engine the readings of the
// patients whose bus partition the node owns and every analytics event, ticks it every second,
// stores each alarm change before anyone hears of it, tells every node's live streams, and has
// the notifiers carry out the deliveries. Lifecycle requests (acknowledge, resolve, silence)
// made on any node reach the node that owns the alarm's patient through the events bus.
//
// When a partition moves, the old owner releases its patients' state and the new owner restores
// their unresolved alarms and the silences still in force from the store before it evaluates
// their next reading.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/codes"
)

// Event kinds on the events bus.
const (
	// EventAlarm carries a Change (without its deliveries) to every node's live streams.
	EventAlarm = "alarm"
	// eventRequest and eventReply carry lifecycle requests to the owning node and back.
	eventRequest = "alarm-request"
	eventReply   = "alarm-reply"
)

// Internal reports whether an event kind is the service's own traffic, not for live streams.
func Internal(kind string) bool {
	return kind == eventRequest || kind == eventReply || kind == eventConfig
}

// ErrUnavailable means no node answered for the alarm's patient in time (its partition is
// moving, or its owner is down): the caller may retry.
var ErrUnavailable = errors.New("alarm service: the node owning this patient did not answer")

// Change is what the live stream carries for every alarm change.
type Change struct {
	Kind  alarm.ChangeKind `json:"change"`
	Alarm iomt.Alarm       `json:"alarm"`
}

// Config configures a Service.
type Config struct {
	Engine *alarm.Engine
	Store  iomt.AlarmStore
	Events iomt.Events
	// Catalog compiles rule sets saved through the API or by other nodes.
	Catalog *codes.Catalog
	// Notify carries out a change's deliveries (notify.Dispatcher.Dispatch); nil: none.
	Notify func(ctx context.Context, ch alarm.Change) error
	// Owned lists the bus partitions of the alarm group this node owns, and Partition maps a
	// patient to its partition; both nil: this node owns every patient.
	Owned     func() []int
	Partition func(patient string) int
	// Tenant finds the tenant of a patient the engine holds nothing of yet, to store a
	// patient-scoped silence under (Registry.Patient's; ErrNotFound refuses the silence).
	// nil: such a patient is taken to be of iomt.DefaultTenant.
	Tenant func(ctx context.Context, patient string) (string, error)
	// Node names this node in requests and logs.
	Node string
	// RequestTimeout bounds how long a lifecycle request waits for the owning node (5 s).
	RequestTimeout time.Duration
	Clock          func() time.Time
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	// AllowInsecureWebhooks accepts routing whose webhooks are plain http:// URLs on other
	// machines (--allow-insecure-webhooks); without it SaveRouting refuses them.
	AllowInsecureWebhooks bool
}

// Service is the alarm engine at work in a node.
type Service struct {
	cfg Config
	e   *alarm.Engine
	log *slog.Logger

	mu       sync.Mutex
	restored map[int]bool                 // partitions whose alarms are loaded into the engine
	waiting  map[string]chan requestReply // request ID → the caller waiting for its reply
	// delivered are snapshots whose notifications are done, to be stored without their
	// outbox mark on the next tick.
	delivered []iomt.Alarm

	dispatching sync.WaitGroup
	runCtx      atomic.Pointer[context.Context] // Run's: deliveries outlive what caused them, not the node

	// The writer stores changes and then tells of them, in order, off the bus's goroutines:
	// evaluation never waits for the disk, and changes queued during one write share the next.
	wmu     sync.Mutex
	wq      []queued
	wclosed bool
	wkick   chan struct{}
	wstop   chan struct{}
	wdone   chan struct{}

	changes    *prometheus.CounterVec
	saveErrors prometheus.Counter
	notifyErrs prometheus.Counter
	active     *prometheus.GaugeVec
}

// New returns a service; call Run to start ticking and Deliver/OnEvent from the bus.
func New(cfg Config) (*Service, error) {
	if cfg.Engine == nil || cfg.Store == nil || cfg.Events == nil || cfg.Catalog == nil {
		return nil, errors.New("alarm service: Engine, Store, Events and Catalog are required")
	}
	if (cfg.Owned == nil) != (cfg.Partition == nil) {
		return nil, errors.New("alarm service: Owned and Partition go together")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, e: cfg.Engine, log: cfg.Logger, restored: map[int]bool{},
		waiting: map[string]chan requestReply{},
		wkick:   make(chan struct{}, 1), wstop: make(chan struct{}), wdone: make(chan struct{})}
	bg := context.Background()
	s.runCtx.Store(&bg)
	s.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iomt_alarm_changes_total", Help: "Alarm changes made on this node, by kind.",
	}, []string{"kind"})
	s.saveErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "iomt_alarm_store_errors_total", Help: "Alarm changes that could not be stored.",
	})
	s.notifyErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "iomt_alarm_notify_errors_total", Help: "Alarm changes whose deliveries failed after retries.",
	})
	s.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "iomt_alarms_unresolved", Help: "Unresolved alarms held by this node, by priority.",
	}, []string{"priority"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.changes, s.saveErrors, s.notifyErrs, s.active} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("alarm service: metrics: %w", err)
			}
		}
	}
	go s.writer()
	return s, nil
}

// Close stores and tells the changes still queued, then stops the writer. Call it once the
// bus has stopped delivering and before the store closes; later changes are dropped.
func (s *Service) Close() {
	s.wmu.Lock()
	if !s.wclosed {
		s.wclosed = true
		close(s.wstop)
	}
	s.wmu.Unlock()
	<-s.wdone
}

func (s *Service) partition(patient string) int {
	if s.cfg.Partition == nil {
		return 0
	}
	return s.cfg.Partition(patient)
}

func (s *Service) ownedSet() map[int]bool {
	if s.cfg.Owned == nil {
		return map[int]bool{0: true}
	}
	set := map[int]bool{}
	for _, p := range s.cfg.Owned() {
		set[p] = true
	}
	return set
}

func (s *Service) owns(patient string) bool {
	if s.cfg.Owned == nil {
		return true
	}
	return slices.Contains(s.cfg.Owned(), s.partition(patient))
}

// ensure loads the unresolved alarms of partition p into the engine once, before the engine
// sees any reading of its patients, so that a condition still present is not raised twice.
// Every other owned partition not loaded yet comes in the same store read: after a start or a
// takeover, one read restores them all.
func (s *Service) ensure(ctx context.Context, p int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restored[p] {
		return nil
	}
	load := map[int]bool{p: true}
	for q := range s.ownedSet() {
		if !s.restored[q] {
			load[q] = true
		}
	}
	as, err := s.cfg.Store.Alarms(ctx, iomt.AlarmFilter{States: []iomt.AlarmState{iomt.AlarmActive, iomt.AlarmAcknowledged}})
	if err != nil {
		return fmt.Errorf("alarm service: restore partitions: %w", err)
	}
	// Silences too: a nurse who silenced a patient for ten minutes is not paged because the
	// node restarted or the partition moved.
	stored, err := s.cfg.Store.AlarmSilences(ctx, iomt.AlarmSilenceFilter{At: s.cfg.Clock()})
	if err != nil {
		return fmt.Errorf("alarm service: restore partitions: silences: %w", err)
	}
	mine := as[:0]
	for _, a := range as {
		if load[s.partition(a.Patient)] {
			mine = append(mine, a)
		}
	}
	var sils []alarm.Silence
	for _, x := range stored {
		if load[s.partition(x.Patient)] {
			sils = append(sils, alarm.Silence{Scope: alarm.Scope{Patient: x.Patient, Rule: x.Rule, Device: x.Device},
				Who: x.Who, Why: x.Why, Until: x.Until})
		}
	}
	s.e.RestoreSilences(sils)
	s.e.Restore(mine)
	for q := range load {
		s.restored[q] = true
	}
	if len(mine) > 0 || len(sils) > 0 {
		s.log.Info("alarms restored", "partitions", len(load), "alarms", len(mine), "silences", len(sils))
	}
	// Notifications a previous owner was sending when it stopped go out again, with the same
	// delivery IDs (receivers drop what they already had).
	for _, a := range mine {
		if a.Undelivered == "" {
			continue
		}
		if ch, ok := s.e.Redeliver(a.ID, alarm.ChangeKind(a.Undelivered), s.cfg.Clock()); ok && len(ch.Deliveries) > 0 {
			s.log.Info("alarm notifications sent again after a restart or handover", "alarm", a.ID, "change", a.Undelivered)
			s.dispatch(ch)
		}
	}
	return nil
}

// Deliver evaluates a batch (the bus handler of the alarm group) and queues the changes for
// the writer. An error (the partition's alarms could not be restored) makes the bus deliver
// it again.
func (s *Service) Deliver(ctx context.Context, b iomt.Batch) error {
	if !s.owns(b.Patient) {
		// Not this node's partition (any more: the lease moved while the batch was on its
		// way). Acknowledging would drop the reading unevaluated; delivered again, it reaches
		// whoever owns the partition then.
		return fmt.Errorf("alarm service: patient %s: partition %d is not owned by this node (yet)", b.Patient, s.partition(b.Patient))
	}
	if err := s.ensure(ctx, s.partition(b.Patient)); err != nil {
		return err
	}
	s.handle(s.e.Observe(b))
	return nil
}

// Status feeds device status (battery) to the engine for patients this node owns.
func (s *Service) Status(ctx context.Context, tenant, patient string, st iomt.DeviceStatus) {
	if patient == "" || !s.owns(patient) {
		return
	}
	if err := s.ensure(ctx, s.partition(patient)); err != nil {
		s.log.Warn("alarm status", "patient", patient, "err", err)
		return
	}
	s.handle(s.e.Status(tenant, patient, st))
}

// OnEvent takes every event of the events bus: analytics events of owned patients go to the
// engine; lifecycle requests are answered by the owner.
func (s *Service) OnEvent(ctx context.Context, ev iomt.Event) {
	switch ev.Kind {
	case EventAlarm:
		return
	case eventConfig:
		if err := s.Load(ctx); err != nil {
			s.log.Error("alarm configuration from another node not applied", "err", err)
		}
		return
	case eventRequest:
		s.serveRequest(ctx, ev)
		return
	case eventReply:
		var r requestReply
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return
		}
		s.mu.Lock()
		ch := s.waiting[r.Request]
		delete(s.waiting, r.Request)
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
		return
	}
	if ev.Patient == "" || !s.owns(ev.Patient) {
		return
	}
	if err := s.ensure(ctx, s.partition(ev.Patient)); err != nil {
		s.log.Warn("alarm event", "patient", ev.Patient, "kind", ev.Kind, "err", err)
		return
	}
	s.handle(s.e.Event(ev))
}

// queued is one call's changes (and patient-scoped silences) waiting for the writer; done,
// when set, receives the outcome.
type queued struct {
	chs      []alarm.Change
	silences []iomt.AlarmSilence
	done     chan error
}

// handle queues changes for the writer and returns at once: the bus's goroutine goes on to
// the next reading while they are stored.
func (s *Service) handle(chs []alarm.Change) {
	s.enqueue(queued{chs: chs})
}

// handleWait queues changes and silences and waits until they are stored and told (for API
// requests, whose callers expect to read what they changed).
func (s *Service) handleWait(ctx context.Context, chs []alarm.Change, sils ...iomt.AlarmSilence) error {
	if len(chs) == 0 && len(sils) == 0 {
		return nil
	}
	done := make(chan error, 1)
	if !s.enqueue(queued{chs: chs, silences: sils, done: done}) {
		return errors.New("alarm service: stopped")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("alarm service: waiting for the store: %w", ctx.Err())
	}
}

func (s *Service) enqueue(w queued) bool {
	if len(w.chs) == 0 && len(w.silences) == 0 {
		return true
	}
	s.wmu.Lock()
	if s.wclosed {
		s.wmu.Unlock()
		s.log.Error("alarm changes after the service stopped are dropped", "changes", len(w.chs), "silences", len(w.silences))
		return false
	}
	s.wq = append(s.wq, w)
	s.wmu.Unlock()
	select {
	case s.wkick <- struct{}{}:
	default:
	}
	return true
}

func (s *Service) writer() {
	defer close(s.wdone)
	for {
		stopping := false
		select {
		case <-s.wkick:
		case <-s.wstop:
			stopping = true
		}
		s.wmu.Lock()
		q := s.wq
		s.wq = nil
		s.wmu.Unlock()
		if len(q) > 0 {
			s.write(q)
		}
		if stopping {
			return
		}
	}
}

// write stores queued changes in one write, then tells the live streams and sends the
// deliveries. Storing comes first: an alarm someone is told of can be looked up and
// acknowledged. A change that cannot be stored is told all the same, since an alarm nobody
// hears is worse than one the API cannot list.
func (s *Service) write(q []queued) {
	// Not Run's context: what was decided is stored even while the node stops.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Silences first: an alarm stored silenced has its silence stored too. A silence's error
	// goes to its own request only.
	silErr := make([]error, len(q))
	for i, w := range q {
		for _, x := range w.silences {
			if err := s.cfg.Store.SaveAlarmSilence(ctx, x); err != nil {
				s.saveErrors.Inc()
				s.log.Error("alarm silence not stored: it holds on this node until it ends or the node stops",
					"patient", x.Patient, "until", x.Until, "err", err)
				silErr[i] = errors.Join(silErr[i], fmt.Errorf("alarm service: store silence of patient %s: %w", x.Patient, err))
			}
		}
	}
	var snaps []iomt.Alarm
	for _, w := range q {
		for _, ch := range w.chs {
			a := ch.Alarm
			if s.cfg.Notify != nil && len(ch.Deliveries) > 0 {
				// The outbox: until its notifications are done, the stored alarm says so.
				a.Undelivered = string(ch.Kind)
			}
			snaps = append(snaps, a)
		}
	}
	var err error
	if len(snaps) > 0 {
		if err = s.cfg.Store.SaveAlarms(ctx, latestOnly(snaps)); err != nil {
			s.saveErrors.Inc()
			s.log.Error("alarm changes not stored; told all the same", "changes", len(snaps), "err", err)
			err = fmt.Errorf("alarm service: store: %w", err)
		}
	}
	for i, w := range q {
		for _, ch := range w.chs {
			s.tell(ctx, ch)
		}
		if w.done != nil {
			werr := silErr[i]
			if len(w.chs) > 0 {
				werr = errors.Join(werr, err)
			}
			w.done <- werr
		}
	}
}

func (s *Service) tell(ctx context.Context, ch alarm.Change) {
	s.changes.WithLabelValues(string(ch.Kind)).Inc()
	data, err := json.Marshal(Change{Kind: ch.Kind, Alarm: ch.Alarm})
	if err == nil {
		err = s.cfg.Events.PublishEvent(ctx, iomt.Event{Tenant: ch.Alarm.Tenant, Patient: ch.Alarm.Patient,
			Kind: EventAlarm, Time: s.cfg.Clock(), Data: data})
	}
	if err != nil {
		s.log.Warn("alarm change not published", "alarm", ch.Alarm.ID, "err", err)
	}
	s.log.Info("alarm "+string(ch.Kind), "alarm", ch.Alarm.ID, "patient", ch.Alarm.Patient,
		"rule", ch.Alarm.Rule, "priority", ch.Alarm.Priority.String(), "state", string(ch.Alarm.State))
	if s.cfg.Notify != nil && len(ch.Deliveries) > 0 {
		s.dispatch(ch)
	}
}

// dispatch sends a change's deliveries in the background, then has the alarm's outbox mark
// cleared (a store that holds a newer snapshot keeps it).
func (s *Service) dispatch(ch alarm.Change) {
	ctx := *s.runCtx.Load()
	s.dispatching.Add(1)
	go func() {
		defer s.dispatching.Done()
		err := s.cfg.Notify(ctx, ch)
		if ctx.Err() != nil {
			// Stopping: the mark stays, and whoever restores the alarm sends again.
			s.log.Info("alarm deliveries interrupted by shutdown; they are sent again on restore", "alarm", ch.Alarm.ID, "change", string(ch.Kind))
			return
		}
		if err != nil {
			s.notifyErrs.Inc()
			s.log.Warn("alarm deliveries failed", "alarm", ch.Alarm.ID, "change", string(ch.Kind), "err", err)
		}
		done := ch.Alarm
		done.Undelivered = ""
		s.mu.Lock()
		s.delivered = append(s.delivered, done)
		s.mu.Unlock()
	}()
}

// clearDelivered stores, in one write, the alarms whose notifications are done since the last
// call: clearing marks costs the disk once a tick, not once a change. A crash before it only
// means those notifications are sent again, under the same IDs.
func (s *Service) clearDelivered(ctx context.Context) {
	s.mu.Lock()
	done := s.delivered
	s.delivered = nil
	s.mu.Unlock()
	// Only alarms the engine still holds as they were: a newer snapshot (or a resolved one,
	// which is never restored) needs no clearing.
	keep := done[:0]
	for _, a := range latestOnly(done) {
		if cur, ok := s.e.Alarm(a.ID); ok && len(cur.Transitions) == len(a.Transitions) {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return
	}
	if err := s.cfg.Store.SaveAlarms(ctx, keep); err != nil {
		s.log.Warn("alarm outbox marks not cleared", "alarms", len(done), "err", err)
	}
}

// latestOnly keeps the last snapshot of each alarm (one call can change an alarm twice).
func latestOnly(as []iomt.Alarm) []iomt.Alarm {
	seen := map[string]int{}
	var out []iomt.Alarm
	for _, a := range as {
		if i, ok := seen[a.ID]; ok {
			out[i] = a
			continue
		}
		seen[a.ID] = len(out)
		out = append(out, a)
	}
	return out
}

func (s *Service) updateGauge() {
	n := s.e.Unresolved()
	for _, p := range []iomt.AlarmPriority{iomt.PriorityLow, iomt.PriorityMedium, iomt.PriorityHigh} {
		s.active.WithLabelValues(p.String()).Set(float64(n[p]))
	}
}

// Run ticks the engine every interval (validation delays, offline devices, escalation,
// silences) and follows partition ownership, until ctx ends; then it waits for deliveries
// under way.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	s.runCtx.Store(&ctx)
	defer s.dispatching.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reconcile(ctx)
		s.clearDelivered(ctx)
		s.handle(s.e.Tick(s.cfg.Clock()))
		s.updateGauge()
	}
}

// reconcile releases the patients of partitions this node no longer owns and restores the
// alarms of partitions it gained.
func (s *Service) reconcile(ctx context.Context) {
	owned := s.ownedSet()
	for _, patient := range s.e.Patients() {
		if !owned[s.partition(patient)] {
			s.e.Release(patient)
		}
	}
	s.mu.Lock()
	var lost []int
	for p := range s.restored {
		if !owned[p] {
			lost = append(lost, p)
		}
	}
	for _, p := range lost {
		delete(s.restored, p)
	}
	s.mu.Unlock()
	for p := range owned {
		// The first partition not loaded yet loads all of them; the rest return at once.
		if err := s.ensure(ctx, p); err != nil {
			s.log.Warn("alarm restore", "err", err)
			return
		}
	}
}
