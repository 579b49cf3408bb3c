package embedded

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openTest opens a store with 1 MiB WAL segments, so that the suites that checkpoint or reopen
// after every Append do not spend their time preallocating 64 MiB segments.
func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Logger: quiet, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) iomt.Store {
		s, err := Open(t.TempDir(), Options{Logger: quiet}) // defaults
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// checkpointing checkpoints after every Append, so queries and duplicate checks run against
// data in Pebble rather than in memory.
type checkpointing struct{ *Store }

func (c checkpointing) Append(ctx context.Context, b []iomt.Batch) ([]int, error) {
	d, err := c.Store.Append(ctx, b)
	if err == nil {
		err = c.Store.Checkpoint()
	}
	return d, err
}

func TestConformanceCheckpointing(t *testing.T) {
	storetest.Run(t, func(t *testing.T) iomt.Store { return checkpointing{openTest(t, t.TempDir())} })
}

// reopening closes and reopens the store after every Append: everything is read back from
// Pebble and the WAL on Open.
type reopening struct {
	t   testing.TB
	dir string
	mu  sync.Mutex // the suite appends concurrently; it queries only after
	*Store
}

func (r *reopening) Append(ctx context.Context, b []iomt.Batch) ([]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.Store.Append(ctx, b)
	if err != nil {
		return d, err
	}
	if err := r.Store.Close(); err != nil {
		return nil, err
	}
	r.Store = openTest(r.t, r.dir)
	return d, nil
}

func TestConformanceReopening(t *testing.T) {
	storetest.Run(t, func(t *testing.T) iomt.Store {
		dir := t.TempDir()
		return &reopening{t: t, dir: dir, Store: openTest(t, dir)}
	})
}

// Identity records survive a Close and a crash (abandon: no checkpoint, nothing flushed but
// what the synced Pebble commits hold), with their indexes.
func TestIdentityAcrossReopen(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "crash"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			storetest.IdentityAcrossReopen(t, openTest(t, dir), func(s iomt.Store) iomt.Store {
				if crash {
					s.(*Store).abandon()
				} else if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return openTest(t, dir)
			})
		})
	}
}
