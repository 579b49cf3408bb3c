package service_test

import (
	"context"
	"encoding/json"
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

const rules = `version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: 59408-5
    below: [{limit: 90, priority: high}]
    delay: 0s
`

// slowStore holds every SaveAlarms until release is closed, as a slow disk would.
type slowStore struct {
	*embedded.Store
	release chan struct{}
	saves   atomic.Int32
}

func (s *slowStore) SaveAlarms(ctx context.Context, as []iomt.Alarm) error {
	<-s.release
	s.saves.Add(1)
	return s.Store.SaveAlarms(ctx, as)
}

// Evaluation does not wait for the disk, the live stream hears of an alarm only once it is
// stored, and what is queued when the service closes is stored.
func TestChangesStoredBeforeToldWithoutHoldingTheBus(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	slow := &slowStore{Store: st, release: make(chan struct{})}
	bus := memory.New(memory.Options{})
	defer bus.Close()
	cat := codes.New()
	r, err := service.CompileRules([]byte(rules), cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := alarm.NewEngine(alarm.Config{Rules: r})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Engine: e, Store: slow, Events: bus, Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	told := make(chan service.Change, 8)
	if err := bus.SubscribeEvents(t.Context(), func(_ context.Context, ev iomt.Event) {
		if ev.Kind != service.EventAlarm {
			return
		}
		var ch service.Change
		if err := json.Unmarshal(ev.Data, &ch); err == nil {
			told <- ch
		}
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, p := range []string{"p1", "p2", "p3"} {
		b := iomt.Batch{Tenant: iomt.DefaultTenant, Patient: p, Device: p + "-ox", Received: now,
			Observations: []iomt.Observation{{Patient: p, Device: p + "-ox", Code: "59408-5", Time: now.Add(time.Duration(i) * time.Millisecond), Value: 85, Unit: "%"}}}
		done := make(chan error, 1)
		go func() { done <- svc.Deliver(context.Background(), b) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Deliver waited for the alarm store")
		}
	}
	select {
	case ch := <-told:
		t.Fatalf("told of %s before it was stored", ch.Alarm.ID)
	case <-time.After(100 * time.Millisecond):
	}
	close(slow.release)
	for range 3 {
		select {
		case ch := <-told:
			if _, err := st.Alarm(context.Background(), ch.Alarm.ID); err != nil || ch.Kind != alarm.Raised {
				t.Fatalf("told %s of %s: stored? %v", ch.Kind, ch.Alarm.ID, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no alarm told after the store answered")
		}
	}
	// At most the first raise is written alone: the others queued while it waited share the
	// next write.
	if n := slow.saves.Load(); n > 2 {
		t.Errorf("%d writes for three raises, want at most 2", n)
	}
	svc.Close()
}
