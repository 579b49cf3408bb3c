// Package embedded is iomt's embedded store: observations, waveforms, patients and devices
// in one data directory, with no server to run.
//
// Layout of the directory:
//
//	LOCK      flock(2)-held while a Store has the directory open
//	wal/      write-ahead log segments (see wal.go)
//	pebble/   a Pebble LSM holding compressed chunks, waveform segments and the registry
//
// Write path: Append checks every reading for duplicates (by device, code and time), adds the
// new ones to in-memory series (a Gorilla-compressed head chunk per series, plus a sorted
// buffer of late samples), encodes them into the pending WAL record, and waits until a group
// commit has written and fsynced that record. Concurrent Append calls share one write and one
// fdatasync. A checkpoint (periodic, when the WAL has grown, and at Close) writes the changed
// chunks, late samples and waveform segments, together with the number of the first WAL
// segment still needed, as one sstable that it ingests into Pebble (atomic and durable, with no
// second copy in Pebble's own WAL), then deletes older segments. Open replays the WAL after the
// last checkpoint. Registry writes go to Pebble directly with a synced commit.
//
// Duplicates are counted in samples: a duplicate observation counts 1, a duplicate waveform
// segment counts its number of samples, as in iomt.Batch.Samples.
package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

const (
	// windowMs is the span that one observation chunk may cover; chunks are aligned to it.
	windowMs = int64(2 * time.Hour / time.Millisecond)
	// maxChunkSamples seals a chunk early for high-rate numerics.
	maxChunkSamples = 16384
)

// Options tune a Store. The zero value is the safe default.
type Options struct {
	// Logger receives warnings (torn WAL tail) and checkpoint errors. Default: slog.Default().
	Logger *slog.Logger
	// NoSync skips the fsync before Append returns. Acknowledged data then survives a crash of
	// the process (kill -9) but not of the machine. Default false: every acknowledged Append
	// is on stable storage.
	NoSync bool
	// CheckpointInterval is how often head chunks are written to Pebble and the WAL trimmed.
	// Default 5 minutes; negative disables the timer (checkpoints still run on WAL size and at
	// Close).
	CheckpointInterval time.Duration
	// CheckpointBytes starts a checkpoint when the WAL has grown by this much. Default 256 MiB.
	CheckpointBytes int64
	// SegmentBytes is the size at which a WAL segment is closed and the next started.
	// Default 64 MiB.
	SegmentBytes int64
	// MemTableBytes is Pebble's memtable size. Default 64 MiB.
	MemTableBytes uint64
}

// Store is the embedded implementation of iomt.Store. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options

	// closing makes every entry point refuse; life is held (read) by every operation in
	// flight and taken (write) by Close.
	closing atomic.Bool
	life    sync.RWMutex

	log   *slog.Logger
	lock  *os.File
	db    *pebble.DB
	popts *pebble.Options

	// mu guards the in-memory series, the pending WAL record and the group-commit state.
	mu      sync.Mutex
	nextID  uint64
	obs     map[seriesName]*series
	obsByID map[uint64]*series
	obsPat  map[string]map[string][]*series // patient → code → series
	obsDev  map[devCode][]*series
	wav     map[seriesName]*wseries
	wavByID map[uint64]*wseries
	wavPat  map[string]map[string][]*wseries
	wavDev  map[devCode][]*wseries
	dirty   map[uint64]struct{} // series changed since the last checkpoint snapshot

	pend       []byte // pending WAL record, recHeader bytes reserved at the start
	spare      []byte
	cur        *group // the group pend will be written with
	inflight   *group // the group being written, if any
	rotFrame   []byte // a checkpoint's frame: written before pend, then the segment rotates
	rotGroup   *group
	commitKick chan struct{}
	commitStop chan struct{}
	commitDone chan struct{}
	commits    atomic.Int64 // records written (group commits), for measurements
	walErr     error        // sticky: after a failed write or fsync nothing more is acknowledged
	walBytes   int64        // written since the last checkpoint
	wal        *walWriter

	regMu sync.Mutex // serialises registry writes (uniqueness checks)
	// alarmMu serialises saves of one alarm (each compares with the stored snapshot), by
	// stripe of alarm IDs.
	alarmMu [alarmStripes]sync.Mutex
	statMu  sync.Mutex
	status  map[string]iomt.DeviceStatus // not yet persisted device status
	// idMu serialises writes of users, care teams, API tokens and emergency accesses; sessMu
	// those of one stripe of session IDs (see people.go). Both are taken after enter.
	idMu   sync.Mutex
	sessMu [sessionStripes]sync.Mutex

	// auditMu serialises audit appends; it guards the chain head, read on the first append.
	auditMu     sync.Mutex
	auditLoaded bool
	auditSeq    uint64
	auditHash   []byte

	ckptMu   sync.Mutex
	ckptKick chan struct{}
	stop     chan struct{}
	bgDone   chan struct{}
	sampleCk []pendSample // scratch for Append, guarded by mu
}

type seriesName struct{ patient, code, device string }

type devCode struct{ device, code string }

// series is one (patient, code, device) stream of observations.
type series struct {
	id                    uint64
	patient, code, device string
	unit                  string

	has     bool // at least one sample stored
	shared  bool // the device has sent this code for other patients too
	inDirty bool // listed in Store.dirty
	lastT   int64
	lastV   float64

	head      *chunkEnc
	headStart int64
	headDirty bool
	sealed    []*memChunk // sealed chunks not yet persisted
	sealedFl  []*memChunk // being persisted by the running checkpoint
	late      []sample    // late samples not yet persisted, sorted by time
	lateFl    []sample
	persisted bool // Pebble may hold chunks of this series
	defDirty  bool // definition not yet in Pebble
}

type memChunk struct {
	start, end int64
	data       []byte
}

// wseries is one (patient, code, device) stream of waveform segments.
type wseries struct {
	id                    uint64
	patient, code, device string
	unit                  string

	has       bool
	lastStart int64
	maxDur    int64 // longest segment in ms, rounded up
	pending   []*wseg
	pendingFl []*wseg
	persisted bool
	defDirty  bool
}

type wseg struct {
	start  int64 // ms
	period int64 // ns
	scale  float64
	n      int
	data   []byte // encodeWave
}

func (w *wseg) durMs() int64 {
	return int64(math.Ceil(float64(w.period) * float64(w.n) / 1e6))
}

// Open opens (creating if needed) the store in dir. Only one Store may have a directory open.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 5 * time.Minute
	}
	if opts.CheckpointBytes <= 0 {
		opts.CheckpointBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if opts.MemTableBytes == 0 {
		opts.MemTableBytes = 64 << 20
	}
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir: dir, opts: opts, log: opts.Logger, lock: lock,
		obs: map[seriesName]*series{}, obsByID: map[uint64]*series{},
		obsPat: map[string]map[string][]*series{}, obsDev: map[devCode][]*series{},
		wav: map[seriesName]*wseries{}, wavByID: map[uint64]*wseries{},
		wavPat: map[string]map[string][]*wseries{}, wavDev: map[devCode][]*wseries{},
		dirty:    map[uint64]struct{}{},
		status:   map[string]iomt.DeviceStatus{},
		pend:     make([]byte, recHeader, 64<<10),
		ckptKick: make(chan struct{}, 1), stop: make(chan struct{}), bgDone: make(chan struct{}),
	}
	s.cur = newGroup()
	s.commitKick, s.commitStop, s.commitDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	if err := s.open(); err != nil {
		if s.db != nil {
			s.db.Close()
		}
		if s.wal != nil {
			s.wal.close()
		}
		unlockDir(lock)
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	go s.committer()
	go s.background()
	return s, nil
}

func (s *Store) open() error {
	popts := &pebble.Options{
		MemTableSize:                s.opts.MemTableBytes,
		MemTableStopWritesThreshold: 4,
		Logger:                      pebbleLogger{s.log},
	}
	popts.EnsureDefaults()
	s.popts = popts
	_ = os.Remove(filepath.Join(s.dir, "checkpoint.sst")) // left by a crash mid-checkpoint
	db, err := pebble.Open(filepath.Join(s.dir, "pebble"), popts)
	if err != nil {
		return fmt.Errorf("pebble: %w", err)
	}
	s.db = db
	walStart, err := s.getU64(keyWALStart)
	if err != nil {
		return err
	}
	if s.nextID, err = s.getU64(keyNextID); err != nil {
		return err
	}
	if s.nextID == 0 {
		s.nextID = 1
	}
	if err := s.loadCatalog(); err != nil {
		return err
	}
	walDir := filepath.Join(s.dir, "wal")
	last, err := replayWAL(walDir, walStart, replayer{s}, s.log.Warn)
	if err != nil {
		return err
	}
	next := max(last+1, walStart, 1)
	s.wal, err = openWALWriter(walDir, next, s.opts.SegmentBytes, s.opts.NoSync, s.log.Warn)
	if err != nil {
		return err
	}
	return nil
}

func (s *Store) getU64(key []byte) (uint64, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt meta key %q", key)
	}
	return binary.BigEndian.Uint64(v), nil
}

func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded: data directory %s is in use by another process (lock %s held)", dir, name)
		}
		return nil, fmt.Errorf("embedded: lock %s: %w", name, err)
	}
	return f, nil
}

func unlockDir(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}

// Close checkpoints and releases the directory. It is safe to call more than once.
func (s *Store) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.life.Lock() // waits for operations in flight
	defer s.life.Unlock()
	close(s.stop)
	<-s.bgDone
	s.wal.closing.Store(true)
	errs := []error{s.checkpoint()}
	close(s.commitStop)
	<-s.commitDone
	if err := s.persistStatus(); err != nil {
		errs = append(errs, err)
	}
	// Flush the memtables so the checkpointed data is in sstables and Pebble's own WAL,
	// which holds a second copy of it, can go.
	if err := s.db.Flush(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, s.wal.close(), s.db.Close())
	unlockDir(s.lock)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

func (s *Store) background() {
	defer close(s.bgDone)
	var tick <-chan time.Time
	if s.opts.CheckpointInterval > 0 {
		t := time.NewTicker(s.opts.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
		case <-s.ckptKick:
		}
		if err := s.checkpoint(); err != nil {
			s.log.Error("embedded: checkpoint failed", "dir", s.dir, "err", err)
		}
		if err := s.persistStatus(); err != nil {
			s.log.Error("embedded: persisting device status failed", "dir", s.dir, "err", err)
		}
	}
}

var errClosed = errors.New("store closed")

// enter admits an operation unless the store is closing; leave must follow.
func (s *Store) enter() bool {
	s.life.RLock()
	if s.closing.Load() {
		s.life.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.life.RUnlock() }

// pebbleLogger sends Pebble's log to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}

// ctxErr wraps a context error for op.
func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	return nil
}

// abandon releases the directory the way a crash would: no checkpoint, no flush of the
// pending WAL record. Pebble keeps what its own (synced) WAL holds. For tests.
func (s *Store) abandon() {
	s.closing.Store(true)
	s.life.Lock()
	defer s.life.Unlock()
	close(s.stop)
	<-s.bgDone
	close(s.commitStop)
	<-s.commitDone
	s.wal.wg.Wait()
	_ = s.wal.f.Close() // as a crash leaves it: preallocated tail and spare included
	_ = s.db.Close()
	unlockDir(s.lock)
}

// compactAll runs a full Pebble compaction. For measurements.
func (s *Store) compactAll() error {
	return s.db.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, true)
}
