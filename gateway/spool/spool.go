// Package spool is the edge gateway's store-and-forward spool: a durable, bounded queue of
// SenML packs waiting for the uplink, ordered per device, with per-device sequence numbers
// that survive restarts so the cloud can drop replays.
//
// Storage is a Pebble database in one directory. Pebble gives what a hand-written segment log
// would have to re-implement: a checksummed write-ahead log whose torn tail is discarded on
// recovery, atomic multi-key batches (evict + insert, or counter + entry, in one write), group
// commit of concurrent fsyncs, and compaction that reclaims the holes left by evicting entries
// from the middle of the queue.
package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/gateway"
)

// Class is the clinical priority of an entry; it decides delivery order and what is dropped
// when the spool is full. It is the adapters' gateway.Class.
type Class = gateway.Class

// Classes, highest priority first.
const (
	Alarm    = gateway.Alarm
	Spot     = gateway.Spot
	Waveform = gateway.Waveform
)

const numClasses = Waveform + 1 // index 0 unused

// Entry is one spooled message: a SenML pack received from one device.
type Entry struct {
	Device   string
	Seq      uint64 // assigned by Put; 1, 2, 3... per device, never reused
	Class    Class
	Payload  []byte
	Received time.Time
}

// Refusals. Each is returned wrapped with context; test with errors.Is.
var (
	ErrEmptyDevice  = errors.New("spool: empty device id")
	ErrBadDevice    = errors.New("spool: device id too long or contains NUL")
	ErrEmptyPayload = errors.New("spool: empty payload")
	ErrBadClass     = errors.New("spool: unknown class")
	ErrTooLarge     = errors.New("spool: entry larger than the spool")
	ErrFull         = errors.New("spool: full of entries of equal or higher priority")
	ErrClosed       = errors.New("spool: closed")
)

// MaxDeviceLen bounds device ids; they are part of every key.
const MaxDeviceLen = 256

// entryOverhead approximates per-entry bytes beyond payload and device id (key and header),
// so that many tiny entries still count against MaxBytes.
const entryOverhead = 32

// Options configures a spool. Zero values are usable.
type Options struct {
	// MaxBytes bounds the logical size (payloads + ids + ~32 B per entry). 0 means 256 MiB.
	// Disk use is higher until Pebble compacts (WAL, obsolete tables): budget about 2x.
	MaxBytes int64
	// Logger receives drops and Pebble messages; nil means slog.Default().
	Logger *slog.Logger
	// Registerer, if set, gets the spool's metrics.
	Registerer prometheus.Registerer
	// NoSync skips fsync: for tests and benchmarks only; a crash may lose acknowledged entries.
	NoSync bool
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// item is the in-memory index record of one entry; the payload stays on disk.
type item struct {
	dev       *device
	seq       uint64
	gseq      uint64 // spool-wide insertion order, for "oldest" across devices
	received  int64  // unix nanoseconds
	size      int64
	class     Class
	committed bool // durable; before that Next does not show it and nothing deletes it
	gone      bool // acknowledged or evicted; dropped lazily from the queues
}

type device struct {
	name string
	last uint64  // last assigned seq
	q    []*item // seq ascending; may hold gone items
	live [numClasses]int
}

// Spool is safe for concurrent use. Next/Ack assume one consumer (the uplink): Next is a peek
// and returns the same entries again until they are acknowledged.
type Spool struct {
	db     *pebble.DB
	wo     *pebble.WriteOptions
	log    *slog.Logger
	now    func() time.Time
	max    int64
	m      *metrics
	closed bool

	mu      sync.Mutex
	devs    map[string]*device
	byClass [numClasses][]*item // gseq ascending; may hold gone items
	live    [numClasses]int
	depth   int
	bytes   int64 // includes reserved, not yet committed entries
	gseq    uint64
	drops   dropLog
}

// Open opens or creates the spool in dir and rebuilds the index from it.
func Open(dir string, opts Options) (*Spool, error) {
	s := &Spool{
		log:  opts.Logger,
		now:  opts.Now,
		max:  opts.MaxBytes,
		devs: make(map[string]*device),
		wo:   pebble.Sync,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "spool")
	if s.now == nil {
		s.now = time.Now
	}
	if s.max <= 0 {
		s.max = 256 << 20
	}
	if opts.NoSync {
		s.wo = pebble.NoSync
	}
	db, err := pebble.Open(dir, &pebble.Options{
		Logger: pebbleLogger{s.log},
		Merger: maxMerger,
	})
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: load %s: %w", dir, err)
	}
	m, err := newMetrics(opts.Registerer, s)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.m = m
	s.log.Info("spool opened", "dir", dir, "depth", s.depth, "bytes", s.bytes, "max_bytes", s.max)
	return s, nil
}

// Close flushes nothing (every acknowledged write is already durable) and releases the files.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.m.unregister()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

// load rebuilds the index: counters from 'c' keys, entries from 'e' keys.
func (s *Spool) load() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCounter}, UpperBound: []byte{prefixCounter + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if len(v) != 8 {
			it.Close()
			return fmt.Errorf("counter %q: bad length %d", it.Key(), len(v))
		}
		name := string(it.Key()[1:])
		s.devs[name] = &device{name: name, last: binary.BigEndian.Uint64(v)}
	}
	if err := it.Close(); err != nil {
		return err
	}

	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEntry}, UpperBound: []byte{prefixEntry + 1}})
	if err != nil {
		return err
	}
	var all []*item
	for it.First(); it.Valid(); it.Next() {
		name, seq, err := parseEntryKey(it.Key())
		if err != nil {
			it.Close()
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		h, err := parseHeader(v)
		if err != nil {
			it.Close()
			return fmt.Errorf("entry %s/%d: %w", name, seq, err)
		}
		d := s.devs[name]
		if d == nil {
			d = &device{name: name}
			s.devs[name] = d
		}
		d.last = max(d.last, seq) // belt and braces: the counter is merged in the same batch
		itm := &item{dev: d, seq: seq, gseq: h.gseq, received: h.received, class: h.class,
			size: int64(len(name)+len(v)-headerLen) + entryOverhead, committed: true}
		d.q = append(d.q, itm) // keys iterate in (device, seq) order
		all = append(all, itm)
		s.gseq = max(s.gseq, h.gseq)
	}
	if err := it.Close(); err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].gseq < all[j].gseq })
	for _, itm := range all {
		s.byClass[itm.class] = append(s.byClass[itm.class], itm)
		s.account(itm, +1)
	}
	return nil
}

func (s *Spool) account(itm *item, sign int) {
	s.live[itm.class] += sign
	itm.dev.live[itm.class] += sign
	s.depth += sign
	s.bytes += int64(sign) * itm.size
}

func validate(e *Entry) error {
	switch {
	case e.Device == "":
		return ErrEmptyDevice
	case len(e.Device) > MaxDeviceLen || strings.IndexByte(e.Device, 0) >= 0:
		return ErrBadDevice
	case len(e.Payload) == 0:
		return ErrEmptyPayload
	case !e.Class.Valid():
		return ErrBadClass
	}
	return nil
}

// Put stores e durably and returns its sequence number for e.Device. It returns only after
// fsync (concurrent callers share one). When the spool is full, Put first drops the oldest
// entries of lower or equal priority (waveforms, then spot readings; never alarms); if that
// is not enough it refuses e with ErrFull. A zero Received means now.
func (s *Spool) Put(ctx context.Context, e Entry) (uint64, error) {
	if err := validate(&e); err != nil {
		return 0, fmt.Errorf("spool: put from %q: %w", e.Device, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("spool: put from %q: %w", e.Device, err)
	}
	if e.Received.IsZero() {
		e.Received = s.now()
	}
	size := int64(len(e.Device)+len(e.Payload)) + entryOverhead
	if size > s.max {
		s.m.refused.WithLabelValues(e.Class.String()).Inc()
		return 0, fmt.Errorf("spool: put from %q (%d B, max %d B): %w", e.Device, size, s.max, ErrTooLarge)
	}

	b := s.db.NewBatch()
	defer b.Close()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	d, err := s.device(e.Device)
	if err != nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("spool: put from %q: %w", e.Device, err)
	}
	victims, ok := s.makeRoom(size, e.Class)
	if !ok {
		s.mu.Unlock()
		s.m.refused.WithLabelValues(e.Class.String()).Inc()
		s.log.Warn("spool full, entry refused", "device", e.Device, "class", e.Class.String(), "bytes", size)
		return 0, fmt.Errorf("spool: put %s from %q: %w", e.Class, e.Device, ErrFull)
	}
	d.last++
	s.gseq++
	itm := &item{dev: d, seq: d.last, gseq: s.gseq, received: e.Received.UnixNano(), size: size, class: e.Class}
	d.q = append(d.q, itm)
	s.byClass[e.Class] = append(s.byClass[e.Class], itm)
	s.account(itm, +1)
	s.mu.Unlock()

	// Build the batch outside the lock; victims are already gone from the index, so no one
	// else will delete them, and they were committed, so no one else will write them.
	var key []byte
	for _, v := range victims {
		key = entryKey(key[:0], v.dev.name, v.seq)
		_ = b.Delete(key, nil)
	}
	key = entryKey(key[:0], e.Device, itm.seq)
	_ = b.Set(key, appendValue(make([]byte, 0, headerLen+len(e.Payload)), itm, e.Payload), nil)
	// The counter is merged with max, so concurrent batches may land in any order.
	var seqb [8]byte
	binary.BigEndian.PutUint64(seqb[:], itm.seq)
	_ = b.Merge(counterKey(e.Device), seqb[:], nil)
	err = b.Commit(s.wo)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The entry is not acknowledged; forget it. Victims stay forgotten in memory; if they
		// are still on disk they come back on restart (duplicate, never lost).
		if !itm.gone {
			itm.gone = true
			s.account(itm, -1)
		}
		return 0, fmt.Errorf("spool: put from %q seq %d: %w", e.Device, itm.seq, err)
	}
	itm.committed = true
	if len(victims) > 0 {
		s.recordDrops(victims)
	}
	return itm.seq, nil
}

// device returns the index of a device, reading its counter on first use.
func (s *Spool) device(name string) (*device, error) {
	if d := s.devs[name]; d != nil {
		return d, nil
	}
	d := &device{name: name}
	v, closer, err := s.db.Get(counterKey(name))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if len(v) == 8 {
			d.last = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	s.devs[name] = d
	return d, nil
}

// makeRoom picks the entries to evict so that size more bytes fit: oldest first, waveforms
// before spot readings, only classes of priority no higher than the incoming class, never
// alarms. It marks the victims gone. Called with s.mu held.
func (s *Spool) makeRoom(size int64, c Class) ([]*item, bool) {
	need := s.bytes + size - s.max
	if need <= 0 {
		return nil, true
	}
	// First check it can be done, so a refused Put evicts nothing.
	var avail int64
	var scan []*item
	for _, vc := range []Class{Waveform, Spot} {
		if vc < c {
			break // never evict a higher priority than the newcomer
		}
		for _, itm := range s.byClass[vc] {
			if itm.gone || !itm.committed {
				continue
			}
			scan = append(scan, itm)
			avail += itm.size
			if avail >= need {
				break
			}
		}
		if avail >= need {
			break
		}
	}
	if avail < need {
		return nil, false
	}
	for _, itm := range scan {
		itm.gone = true
		s.account(itm, -1)
	}
	s.compact()
	return scan, true
}

// Next returns up to max of the oldest committed, unacknowledged entries: alarms first, then
// spot readings, then waveforms, oldest first within a priority, and never reordering one
// device's entries: an entry is delivered with the priority of the highest entry of its device
// queued behind it, so a device's alarm pulls its earlier entries forward with it.
func (s *Spool) Next(max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	h := make(cursorHeap, 0, len(s.devs))
	for _, d := range s.devs {
		c := &cursor{d: d, live: d.live}
		if c.advance() {
			h = append(h, c)
		}
	}
	h.init()
	var picked []*item
	for len(picked) < max && len(h) > 0 {
		c := h[0]
		itm := c.d.q[c.i]
		picked = append(picked, itm)
		c.live[itm.class]--
		c.i++
		if c.advance() {
			h.fix0()
		} else {
			h.pop0()
		}
	}
	s.mu.Unlock()

	out := make([]Entry, 0, len(picked))
	var key []byte
	for _, itm := range picked {
		key = entryKey(key[:0], itm.dev.name, itm.seq)
		v, closer, err := s.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue // acknowledged or evicted meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("spool: read %s/%d: %w", itm.dev.name, itm.seq, err)
		}
		h, err := parseHeader(v)
		if err != nil {
			closer.Close()
			return out, fmt.Errorf("spool: read %s/%d: %w", itm.dev.name, itm.seq, err)
		}
		out = append(out, Entry{Device: itm.dev.name, Seq: itm.seq, Class: h.class,
			Payload: bytes.Clone(v[headerLen:]), Received: time.Unix(0, h.received).UTC()})
		closer.Close()
	}
	return out, nil
}

// Ack durably removes the given entries (as returned by Next). Unknown ones are ignored.
func (s *Spool) Ack(entries ...Entry) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var items []*item
	for _, e := range entries {
		d := s.devs[e.Device]
		if d == nil {
			continue
		}
		i := sort.Search(len(d.q), func(i int) bool { return d.q[i].seq >= e.Seq })
		if i < len(d.q) && d.q[i].seq == e.Seq && !d.q[i].gone && d.q[i].committed {
			items = append(items, d.q[i])
		}
	}
	s.mu.Unlock()
	return s.remove(items)
}

// Remove durably removes every committed entry of device with seq <= upTo.
func (s *Spool) Remove(device string, upTo uint64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var items []*item
	if d := s.devs[device]; d != nil {
		for _, itm := range d.q {
			if itm.seq > upTo {
				break
			}
			if !itm.gone && itm.committed {
				items = append(items, itm)
			}
		}
	}
	s.mu.Unlock()
	return s.remove(items)
}

func (s *Spool) remove(items []*item) error {
	if len(items) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var key []byte
	for _, itm := range items {
		key = entryKey(key[:0], itm.dev.name, itm.seq)
		_ = b.Delete(key, nil)
	}
	if err := b.Commit(s.wo); err != nil {
		return fmt.Errorf("spool: remove %d entries: %w", len(items), err)
	}
	// Forget them only once durable: a failed delete leaves them to be delivered again.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, itm := range items {
		if !itm.gone {
			itm.gone = true
			s.account(itm, -1)
		}
	}
	s.compact()
	return nil
}

// Stats reports the number of entries, their logical bytes, and the Received time of the
// oldest one (zero when empty).
func (s *Spool) Stats() (depth int, bytes int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compact()
	var o int64
	for c := Alarm; c <= Waveform; c++ {
		for _, itm := range s.byClass[c] {
			if !itm.gone {
				if o == 0 || itm.received < o {
					o = itm.received
				}
				break
			}
		}
	}
	if o != 0 {
		oldest = time.Unix(0, o).UTC()
	}
	return s.depth, s.bytes, oldest
}

// compact drops gone items from the queue heads, and rewrites a queue when most of it is
// holes (evictions from the middle), so memory follows the live depth.
func (s *Spool) compact() {
	for c := Alarm; c <= Waveform; c++ {
		q := s.byClass[c]
		for len(q) > 0 && q[0].gone {
			q[0] = nil
			q = q[1:]
		}
		if len(q) > 1024 && len(q) > 2*s.live[c] {
			q = keepLive(q)
		}
		s.byClass[c] = q
	}
	for name, d := range s.devs {
		q := d.q
		for len(q) > 0 && q[0].gone {
			q[0] = nil
			q = q[1:]
		}
		live := d.live[Alarm] + d.live[Spot] + d.live[Waveform]
		if len(q) > 64 && len(q) > 2*live {
			q = keepLive(q)
		}
		d.q = q
		if len(q) == 0 && len(s.devs) > 4096 {
			delete(s.devs, name) // its counter is on disk; reloaded on next Put
		}
	}
}

func keepLive(q []*item) []*item {
	out := make([]*item, 0, len(q)/2)
	for _, itm := range q {
		if !itm.gone {
			out = append(out, itm)
		}
	}
	return out
}

// dropLog aggregates evictions so a full spool logs once per interval, not once per Put.
type dropLog struct {
	last    time.Time
	pending [numClasses]int
}

func (s *Spool) recordDrops(victims []*item) {
	for _, v := range victims {
		s.m.dropped.WithLabelValues(v.class.String()).Inc()
		s.drops.pending[v.class]++
	}
	now := s.now()
	if now.Sub(s.drops.last) < 10*time.Second {
		return
	}
	s.drops.last = now
	p := s.drops.pending
	s.drops.pending = [numClasses]int{}
	s.log.Warn("spool full, oldest entries dropped", "waveform", p[Waveform], "spot", p[Spot],
		"depth", s.depth, "bytes", s.bytes, "max_bytes", s.max)
}

// cursor walks one device's queue during Next, tracking the classes still ahead of it.
type cursor struct {
	d    *device
	i    int
	live [numClasses]int
}

// advance skips gone items; false when the device has nothing deliverable left (end of
// queue, or an uncommitted entry that later ones must not overtake).
func (c *cursor) advance() bool {
	for c.i < len(c.d.q) && c.d.q[c.i].gone {
		c.i++
	}
	return c.i < len(c.d.q) && c.d.q[c.i].committed
}

// prio is the highest class still queued at or behind the cursor.
func (c *cursor) prio() Class {
	for cl := Alarm; cl <= Waveform; cl++ {
		if c.live[cl] > 0 {
			return cl
		}
	}
	return Waveform
}

func (c *cursor) less(o *cursor) bool {
	if p, q := c.prio(), o.prio(); p != q {
		return p < q
	}
	return c.d.q[c.i].gseq < o.d.q[o.i].gseq
}

type cursorHeap []*cursor

func (h cursorHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h cursorHeap) fix0() { h.down(0) }

func (h *cursorHeap) pop0() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
}

func (h cursorHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// pebbleLogger routes Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble")
	panic("pebble: " + msg)
}

var _ io.Closer = (*Spool)(nil)
