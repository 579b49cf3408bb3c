package nats

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

func TestEventsReachEveryNode(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		a, b := e.open(nil), e.open(nil) // two nodes
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		got := map[string][]string{}
		for name, bus := range map[string]*Bus{"a": a, "b": b} {
			if err := bus.SubscribeEvents(ctx, func(_ context.Context, ev iomt.Event) {
				mu.Lock()
				defer mu.Unlock()
				got[name] = append(got[name], ev.Patient+"/"+ev.Kind+"/"+string(ev.Data))
			}); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := json.Marshal(map[string]int{"mgdl": 52})
		if err := a.PublishEvent(ctx, iomt.Event{Patient: "p1", Kind: "cgm-alert", Time: time.Now(), Data: data}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "both nodes to hear the event", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got["a"]) == 1 && len(got["b"]) == 1
		})
		mu.Lock()
		if got["b"][0] != `p1/cgm-alert/{"mgdl":52}` {
			t.Fatalf("b heard %q", got["b"][0])
		}
		mu.Unlock()
		if a.Partition("p1") != Partition("p1", a.Partitions()) {
			t.Fatal("Bus.Partition disagrees with Partition")
		}
	})
}
