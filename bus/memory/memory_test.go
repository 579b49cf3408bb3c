package memory_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/bus/memory"
)

func TestOrderPerPatientAndFanOut(t *testing.T) {
	b := memory.New(memory.Options{Partitions: 4, Buffer: 8})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const patients, per = 10, 200
	type rec struct {
		mu   sync.Mutex
		seen map[string][]int
		n    int
		done chan struct{}
	}
	newRec := func() *rec { return &rec{seen: map[string][]int{}, done: make(chan struct{})} }
	// Two named groups and two broadcast subscribers: each sees everything.
	type sub struct {
		name string
		r    *rec
	}
	groups := []sub{{"store", newRec()}, {"live", newRec()}, {"", newRec()}, {"", newRec()}}
	for _, g := range groups {
		r := g.r
		err := b.Subscribe(ctx, g.name, func(_ context.Context, bt iomt.Batch) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.seen[bt.Patient] = append(r.seen[bt.Patient], len(bt.Observations))
			r.n++
			if r.n == patients*per {
				close(r.done)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Subscribe(ctx, "store", func(context.Context, iomt.Batch) error { return nil }); err == nil {
		t.Fatal("second subscriber of one group accepted")
	}
	var wg sync.WaitGroup
	for p := 0; p < patients; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				bt := iomt.Batch{Patient: fmt.Sprintf("p%d", p), Observations: make([]iomt.Observation, i)}
				if err := b.Publish(ctx, bt); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	wg.Wait()
	for _, g := range groups {
		name, r := g.name, g.r
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("group %s got %d of %d batches", name, r.n, patients*per)
		}
		for p, seq := range r.seen {
			for i, n := range seq {
				if n != i {
					t.Fatalf("group %s patient %s: batch %d out of order (got %d)", name, p, i, n)
				}
			}
		}
	}
}

func TestPublishWaitsThenHonoursContext(t *testing.T) {
	b := memory.New(memory.Options{Partitions: 1, Buffer: 1})
	defer b.Close()
	block := make(chan struct{})
	defer close(block)
	if err := b.Subscribe(context.Background(), "slow", func(context.Context, iomt.Batch) error { <-block; return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		err = b.Publish(ctx, iomt.Batch{Patient: "p"})
	}
	if err == nil {
		t.Fatal("publish into a full queue did not wait for the context")
	}
}

func TestClosed(t *testing.T) {
	b := memory.New(memory.Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), iomt.Batch{}); err != memory.ErrClosed {
		t.Fatalf("publish after close: %v", err)
	}
}

func BenchmarkPublish(b *testing.B) {
	bus := memory.New(memory.Options{})
	defer bus.Close()
	ctx := context.Background()
	_ = bus.Subscribe(ctx, "sink", func(context.Context, iomt.Batch) error { return nil })
	bt := iomt.Batch{Patient: "p1", Observations: make([]iomt.Observation, 4)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := bus.Publish(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEventsReachEverySubscriber(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	got := map[int][]string{}
	for i := range 2 {
		if err := b.SubscribeEvents(ctx, func(_ context.Context, e iomt.Event) {
			mu.Lock()
			defer mu.Unlock()
			got[i] = append(got[i], e.Patient+"/"+e.Kind)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PublishEvent(context.Background(), iomt.Event{Patient: "p1", Kind: "cgm-alert"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got[0]) != 1 || len(got[1]) != 1 || got[0][0] != "p1/cgm-alert" {
		t.Fatalf("got %v", got)
	}
	mu.Unlock()
	cancel()
	// A subscription whose context ended hears nothing more.
	for deadline := time.Now().Add(2 * time.Second); ; {
		_ = b.PublishEvent(context.Background(), iomt.Event{Patient: "p2", Kind: "x"})
		mu.Lock()
		n := len(got[0])
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("events still delivered after cancel: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		m := len(got[0])
		mu.Unlock()
		if m == n {
			break
		}
	}
	b.Close()
	if err := b.PublishEvent(context.Background(), iomt.Event{}); err == nil {
		t.Fatal("publish after close accepted")
	}
}

// A group that has fallen behind holds up the publisher, but not the other groups: they get
// the batch first.
func TestLaggingGroupDoesNotHoldUpOthers(t *testing.T) {
	b := memory.New(memory.Options{Partitions: 1, Buffer: 1})
	defer b.Close()
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, which waits for the handlers
	if err := b.Subscribe(t.Context(), "slow", func(context.Context, iomt.Batch) error { <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	got := make(chan iomt.Batch, 8)
	if err := b.Subscribe(t.Context(), "alarms", func(_ context.Context, bt iomt.Batch) error { got <- bt; return nil }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 4 {
			_ = b.Publish(t.Context(), iomt.Batch{Patient: "p", Device: strconv.Itoa(i)})
		}
	}()
	// "slow" holds one batch and queues one; the third Publish waits for it, but only after
	// "alarms" has had the third batch.
	for i := range 3 {
		select {
		case bt := <-got:
			if bt.Device != strconv.Itoa(i) {
				t.Fatalf("batch %s, want %d", bt.Device, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d did not reach the other group while one lagged", i)
		}
	}
	free()
	<-done
}
