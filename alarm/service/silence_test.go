package service_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/service"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/store/embedded"
)

const routing = `default_team: ward
teams:
  - id: ward
    escalation: {}
    members: []
    hooks: ["https://pager.example/ward"]
`

// clock is a wall clock the test moves; the service's ticker reads it from its own goroutine.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// notified records the changes given to Notify (only changes with deliveries reach it).
type notified struct {
	mu  sync.Mutex
	chs []alarm.Change
}

func (n *notified) Notify(_ context.Context, ch alarm.Change) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.chs = append(n.chs, ch)
	return nil
}

func (n *notified) kinds() []alarm.ChangeKind {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []alarm.ChangeKind
	for _, ch := range n.chs {
		out = append(out, ch.Kind)
	}
	return out
}

// node is one alarm service with its own engine, as a node runs it.
type node struct {
	svc   *service.Service
	told  *notified
	owner *atomic.Bool // owns the one partition every patient is on
}

func newNode(t *testing.T, st iomt.AlarmStore, bus *memory.Bus, c *clock) *node {
	t.Helper()
	cat := codes.New()
	r, err := service.CompileRules([]byte(rules), cat)
	if err != nil {
		t.Fatal(err)
	}
	router, err := service.CompileRouting([]byte(routing))
	if err != nil {
		t.Fatal(err)
	}
	e, err := alarm.NewEngine(alarm.Config{Rules: r, Router: router, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{told: &notified{}, owner: &atomic.Bool{}}
	n.owner.Store(true)
	n.svc, err = service.New(service.Config{Engine: e, Store: st, Events: bus, Catalog: cat, Notify: n.told.Notify,
		Owned: func() []int {
			if n.owner.Load() {
				return []int{0}
			}
			return nil
		},
		Partition: func(string) int { return 0 },
		Tenant:    func(context.Context, string) (string, error) { return "ward-7", nil },
		Clock:     c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SubscribeEvents(t.Context(), n.svc.OnEvent); err != nil {
		t.Fatal(err)
	}
	return n
}

// A patient's silence outlives the node that took it: after a restart on the same data, or on
// the node that takes the patient's partition over, a new alarm of that patient during the
// silence is raised silenced and notifies no one; when the silence ends, it is notified.
func TestPatientSilenceSurvivesRestartAndHandover(t *testing.T) {
	for _, how := range []string{"restart", "handover"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			st, err := embedded.Open(dir, embedded.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { st.Close() }()
			bus := memory.New(memory.Options{})
			defer bus.Close()
			c := &clock{}
			c.Set(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC))
			first := newNode(t, st, bus, c)
			until := c.Now().Add(10 * time.Minute)
			got, err := first.svc.Silence(t.Context(), alarm.Silence{Scope: alarm.Scope{Patient: "p1"}, Who: "admin/ann", Why: "washing", Until: until})
			if err != nil || len(got) != 0 {
				t.Fatalf("silence: %v %v (no alarm to silence yet)", got, err)
			}
			// Stored before the answer.
			sils, err := st.AlarmSilences(t.Context(), iomt.AlarmSilenceFilter{At: c.Now()})
			if err != nil || len(sils) != 1 || sils[0].Tenant != "ward-7" || sils[0].Patient != "p1" || !sils[0].Until.Equal(until) || sils[0].Who != "admin/ann" {
				t.Fatalf("stored silences: %+v %v", sils, err)
			}

			var second *node
			switch how {
			case "restart":
				first.svc.Close()
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				if st, err = embedded.Open(dir, embedded.Options{NoSync: true}); err != nil {
					t.Fatal(err)
				}
				second = newNode(t, st, bus, c)
			case "handover":
				defer first.svc.Close()
				second = newNode(t, st, bus, c)
				second.owner.Store(false)
				c.Add(time.Minute)
				first.owner.Store(false)
				second.owner.Store(true)
			}
			defer second.svc.Close()
			c.Add(time.Minute)
			now := c.Now()
			b := iomt.Batch{Tenant: "ward-7", Patient: "p1", Device: "ox", Received: now,
				Observations: []iomt.Observation{{Patient: "p1", Device: "ox", Code: "59408-5", Time: now, Value: 85, Unit: "%"}}}
			if err := second.svc.Deliver(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			var a iomt.Alarm
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				as, err := st.Alarms(t.Context(), iomt.AlarmFilter{Patient: "p1"})
				if err != nil {
					t.Fatal(err)
				}
				if len(as) == 1 {
					a = as[0]
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no alarm stored: %+v", as)
				}
			}
			// An outbox mark would mean the raise had deliveries.
			if !a.SilencedUntil.Equal(until) || a.Undelivered != "" {
				t.Fatalf("alarm raised during the silence: silenced until %v, undelivered %q; want %v and none", a.SilencedUntil, a.Undelivered, until)
			}

			// The silence ends: the alarm is routed at its level.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go second.svc.Run(ctx, 5*time.Millisecond)
			c.Set(until.Add(time.Second))
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if k := second.told.kinds(); len(k) > 0 {
					if len(k) != 1 || k[0] != alarm.SilenceExpired {
						t.Fatalf("notified %v, want silence-expired only", k)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("not notified after the silence ended")
				}
			}
			if k := first.told.kinds(); len(k) != 0 {
				t.Fatalf("the first node notified %v", k)
			}
		})
	}
}
