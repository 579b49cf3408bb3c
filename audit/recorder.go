// Package audit is iomt's tamper-evident audit trail on top of an iomt.AuditStore: a Recorder
// that makes each record durable before its caller goes on (group commit), a Signer that seals
// the chain with Ed25519-signed checkpoints, Verify that walks the trail and names the first
// bad record, and Export as JSON lines.
//
// The chain (iomt.AuditEvent.ChainHash) detects an edit, deletion, insertion or reordering of
// records by anyone who does not recompute every hash after it; the signed checkpoints detect
// those who do, back to the last checkpoint, and a truncation of the trail before it. Records
// after the last checkpoint are protected by the chain only: checkpoints are frequent (every
// 1000 records or 60 s by default, and at Close) to keep that tail short.
package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/iomt/iomt"
)

// Options tune a Recorder. The zero value records without checkpoints.
type Options struct {
	// Signer seals the chain with signed checkpoints; nil: no checkpoints (Verify then checks
	// the chain alone).
	Signer *Signer
	// CheckpointEvery is how many records this recorder appends between checkpoints.
	// Default 1000.
	CheckpointEvery int
	// CheckpointInterval is the longest a record waits for a checkpoint. Default 60 s.
	CheckpointInterval time.Duration
	// MaxBatch bounds the records of one append. Default 4096.
	MaxBatch int
	// Writers is how many appends may be in flight at once. Default 2: while one waits for
	// the disk, the next is already encoded and applied, and the store syncs them together
	// (the embedded store; PostgreSQL serialises appends on the chain head anyway).
	Writers int
	// Node names this node in every record (Detail["node"]), so that the trail of a cluster
	// says which node observed what. Default: none.
	Node string
	// Logger receives checkpoint failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for records without a time and for checkpoints. Default time.Now.
	Now func() time.Time
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: recorder closed")

// Recorder appends records to the trail. Concurrent Record calls are gathered into one
// AppendAudit (group commit): while one append waits for the disk, the records that arrive
// queue for the next, so many callers share one fsync and each still returns only once its
// record is durable. It is safe for concurrent use.
type Recorder struct {
	store iomt.AuditStore
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	queue  []*group // waiting to be appended, oldest first
	closed bool
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	// signMu guards what the writers appended and the checkpoints of it.
	signMu   sync.Mutex
	unsigned int    // records appended since the last checkpoint
	seq      uint64 // the last record this recorder appended
	hash     []byte
}

// group is the records of one append and its outcome, shared by their callers.
type group struct {
	events []iomt.AuditEvent
	err    error
	done   chan struct{}
}

// NewRecorder starts a recorder appending to store. Close it to write the last checkpoint.
func NewRecorder(store iomt.AuditStore, o Options) *Recorder {
	o.CheckpointEvery = cmp.Or(o.CheckpointEvery, 1000)
	o.CheckpointInterval = cmp.Or(o.CheckpointInterval, time.Minute)
	o.MaxBatch = cmp.Or(o.MaxBatch, 4096)
	o.Writers = max(1, cmp.Or(o.Writers, 2))
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{store: store, opts: o, log: o.Logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// Record appends e to the trail and returns once it is durable, or with the reason it is not
// (then the caller must not go on as if it were: the data it was about to return stays
// unreturned). Seq, Prev and Hash are assigned by the store; a zero Time is now, an empty
// Tenant iomt.DefaultTenant. A record the store could not keep (no actor, bad outcome, NUL
// bytes: iomt.CheckAuditEvent) is refused with iomt.ErrInvalid before anything is written.
// If ctx ends first its error is returned, and the record may still be written.
func (r *Recorder) Record(ctx context.Context, e iomt.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: record: %w", err)
	}
	if e.Time.IsZero() {
		e.Time = r.opts.Now()
	}
	if e.Tenant == "" {
		e.Tenant = iomt.DefaultTenant
	}
	if r.opts.Node != "" && e.Detail["node"] == "" {
		d := make(map[string]string, len(e.Detail)+1)
		maps.Copy(d, e.Detail)
		d["node"] = r.opts.Node
		e.Detail = d
	}
	if err := iomt.CheckAuditEvent(e); err != nil {
		return fmt.Errorf("audit: record %s by %s: %w", e.Action, e.Actor, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	var g *group
	if n := len(r.queue); n > 0 && len(r.queue[n-1].events) < r.opts.MaxBatch {
		g = r.queue[n-1]
	} else {
		g = &group{done: make(chan struct{})}
		r.queue = append(r.queue, g)
	}
	g.events = append(g.events, e)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("audit: record %s by %s: %w (the record may still be written)", e.Action, e.Actor, ctx.Err())
	}
}

// Close appends what is queued, writes a last checkpoint and stops. Records after Close are
// refused with ErrClosed. If ctx ends first, Close returns its error and the writer finishes
// in the background.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: close: %w", ctx.Err())
	}
}

// run starts the writers and, with a signer, checkpoints on the timer.
func (r *Recorder) run() {
	defer close(r.done)
	// Appends run to completion even when Close comes: a caller is waiting for each.
	ctx := context.Background()
	var writers sync.WaitGroup
	for range r.opts.Writers {
		writers.Go(func() { r.write(ctx) })
	}
	if r.opts.Signer != nil {
		t := time.NewTicker(r.opts.CheckpointInterval)
		defer t.Stop()
	timer:
		for {
			select {
			case <-t.C:
				r.checkpoint(ctx, 1)
			case <-r.stop:
				break timer
			}
		}
	}
	writers.Wait()
	r.checkpoint(ctx, 1)
}

// write is a writer: one append at a time, each taking the oldest group queued. It returns
// once Close has been called and the queue is empty.
func (r *Recorder) write(ctx context.Context) {
	for {
		for r.writeOne(ctx) {
		}
		select {
		case <-r.kick:
		case <-r.stop:
			for r.writeOne(ctx) {
			}
			return
		}
	}
}

// writeOne appends the oldest queued group; false when there was none.
func (r *Recorder) writeOne(ctx context.Context) bool {
	r.mu.Lock()
	if len(r.queue) == 0 {
		r.mu.Unlock()
		return false
	}
	g := r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	more := len(r.queue) > 0
	r.mu.Unlock()
	if more {
		// Another writer may take the next group while this one waits for the disk.
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	out, err := r.store.AppendAudit(ctx, g.events)
	if err != nil {
		g.err = fmt.Errorf("audit: append %d records: %w", len(g.events), err)
	} else if len(out) > 0 {
		last := out[len(out)-1]
		r.signMu.Lock()
		if last.Seq > r.seq {
			r.seq, r.hash = last.Seq, last.Hash
		}
		r.unsigned += len(out)
		r.signMu.Unlock()
	}
	close(g.done)
	r.checkpoint(ctx, r.opts.CheckpointEvery)
	return true
}

// checkpoint signs and saves the last record this recorder appended once at least atLeast
// records are unsigned. A failure is logged and tried again at the next occasion: records
// are durable without it.
func (r *Recorder) checkpoint(ctx context.Context, atLeast int) {
	if r.opts.Signer == nil {
		return
	}
	r.signMu.Lock()
	defer r.signMu.Unlock()
	if r.unsigned < atLeast || r.unsigned == 0 {
		return
	}
	c := r.opts.Signer.Sign(r.seq, r.hash, r.opts.Now())
	if err := r.store.SaveAuditCheckpoint(ctx, c); err != nil {
		r.log.Error("audit: saving a signed checkpoint failed; records stay chained and the next checkpoint covers them", "seq", c.Seq, "err", err)
		return
	}
	r.unsigned = 0
}
