// Package postgres is iomt's PostgreSQL store: observations, waveforms, patients and devices
// in plain tables that a hospital's own tools (psql, Grafana, reporting) can read. See
// README.md for the schema.
//
// Write path: Append validates its batches and queues them; a few writer goroutines each take
// whatever is queued (group commit: the calls that arrived while the previous transaction was
// committing) and write it in one transaction: the readings go in as arrays, INSERT ...
// SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING tells which were new, and the same
// statement upserts the latest reading of each (patient, code). A large group is first
// copied (COPY) into a session temporary table and inserted from there by the same statement
// (copy.go). Append returns once that transaction has committed (synchronous_commit as the
// server is configured; on by default).
//
// Duplicates are counted in samples, as in the embedded store: a duplicate observation counts
// 1, a duplicate waveform segment (same device, code and start) counts its samples.
//
// Observations and waveforms are partitioned by day; partitions are created ahead by a
// background task and on demand for any date, and dropped by DropBefore.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iomt/iomt"
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// Logger receives migrations, partition maintenance and background errors. It never sees
	// the connection password. Default slog.Default().
	Logger *slog.Logger
	// MaxConns is the size of the connection pool. Default: Writers + 4, at least the pgxpool
	// default (4 or the number of CPUs).
	MaxConns int32
	// Writers is how many group-commit transactions may be in flight at once. Default 2: one
	// gathers and sends while the other waits for its commit.
	Writers int
	// MaxGroupRows bounds one group-commit transaction: observations plus waveform segments.
	// Default 20000.
	MaxGroupRows int
	// MaxGroupSamples bounds the waveform samples of one group-commit transaction.
	// Default 1,000,000.
	MaxGroupSamples int
	// StatusInterval is how often device status (last seen, battery) is written. Default 2s.
	StatusInterval time.Duration
	// PrecreateDays is how many days of partitions past today the background task keeps
	// ready, so that midnight does not wait for DDL. Default 2.
	PrecreateDays int
	// CopyMinRows is the number of readings in one group commit from which they are
	// written with COPY through a staging table rather than as arrays in one statement (see
	// copy.go). Default 500; negative: never.
	CopyMinRows int
	// CopyMinSamples is the same for waveform segments, counted in samples. Default 250,000
	// (1,000 one-second ECG segments at 250 Hz); negative: never.
	//
	// COPY needs the TEMP privilege on the database (PUBLIC has it by default), and session
	// pooling if a pooler (PgBouncer) stands in between: set both negative otherwise.
	CopyMinSamples int

	// staging is how the COPY path's staging tables live; only benchmarks change it, to
	// compare the ways.
	staging stageMode
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.MaxGroupRows <= 0 {
		o.MaxGroupRows = 20000
	}
	if o.MaxGroupSamples <= 0 {
		o.MaxGroupSamples = 1_000_000
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 2 * time.Second
	}
	if o.PrecreateDays <= 0 {
		o.PrecreateDays = 2
	}
	if o.CopyMinRows == 0 {
		o.CopyMinRows = 500
	}
	if o.CopyMinSamples == 0 {
		o.CopyMinSamples = 250_000
	}
}

// Store is the PostgreSQL implementation of iomt.Store. It is safe for concurrent use, and
// several Stores (on several nodes) may share one database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	opts Options

	// closing makes every entry point refuse; life is held (read) by every operation in
	// flight and taken (write) by Close.
	closing   atomic.Bool
	life      sync.RWMutex
	closeOnce sync.Once
	closeErr  error

	queue   chan *request
	commits atomic.Int64  // group transactions committed, for measurements
	stop    chan struct{} // closed by Close after the last Append has been answered
	writers sync.WaitGroup
	bgDone  chan struct{}

	partMu sync.Mutex
	parts  map[int64]bool // partitions known to exist, by day (see dayOf)

	spanMu sync.Mutex
	span   int64 // longest waveform segment (ms) known to be committed

	statMu sync.Mutex
	status map[string]iomt.DeviceStatus // device status not yet written
	known  map[string]bool              // devices known to exist (a device deleted by another node stays: its status update then changes no row)
}

// poolConfig parses url without letting its password reach an error message.
func poolConfig(url string, o Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors; say only what kind of problem it
		// is in case a future version does not.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return nil, fmt.Errorf("postgres: %w: bad connection URL: %v", iomt.ErrInvalid, pe.Unwrap())
		}
		return nil, fmt.Errorf("postgres: %w: bad connection URL", iomt.ErrInvalid)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	} else {
		cfg.MaxConns = max(cfg.MaxConns, int32(o.Writers)+4, int32(runtime.NumCPU()))
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "iomt"
	}
	return cfg, nil
}

// Open connects to the database at url (postgres://user:password@host:port/db?sslmode=...),
// applies the migrations it lacks and starts the writers. The URL's password is never logged.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	o.defaults()
	cfg, err := poolConfig(url, o)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{
		pool:   pool,
		log:    o.Logger,
		opts:   o,
		queue:  make(chan *request, 4096),
		stop:   make(chan struct{}),
		bgDone: make(chan struct{}),
		parts:  map[int64]bool{},
		status: map[string]iomt.DeviceStatus{},
		known:  map[string]bool{},
	}
	if err := migrate(ctx, pool, s.log); err != nil {
		pool.Close()
		return nil, err
	}
	if err := pool.QueryRow(ctx, "SELECT max_ms FROM waveform_span").Scan(&s.span); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := s.precreate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	for range o.Writers {
		s.writers.Add(1)
		go s.writer()
	}
	go s.background()
	return s, nil
}

// Pool is the connection pool, for tools and tests that query the tables directly.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var errClosed = errors.New("store closed")

func (s *Store) enter() bool {
	if s.closing.Load() {
		return false
	}
	s.life.RLock()
	if s.closing.Load() {
		s.life.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.life.RUnlock() }

// Close waits for the operations in flight, writes the pending device status and closes the
// pool. A second Close returns the first one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.life.Lock()
		close(s.stop)
		s.writers.Wait()
		<-s.bgDone
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.flushStatus(ctx); err != nil {
			s.closeErr = fmt.Errorf("postgres: close: writing device status: %w", err)
		}
		s.pool.Close()
		s.life.Unlock()
	})
	return s.closeErr
}

// background keeps partitions created ahead and writes device status.
func (s *Store) background() {
	defer close(s.bgDone)
	status := time.NewTicker(s.opts.StatusInterval)
	defer status.Stop()
	parts := time.NewTicker(time.Hour)
	defer parts.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-status.C:
			if err := s.flushStatus(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("postgres: writing device status", "err", err)
			}
		case <-parts.C:
			if err := s.precreate(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("postgres: creating partitions ahead", "err", err)
			}
		}
	}
}

func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return nil
}

// wrap adds context to a database error; when ctx is done the context's error is what the
// caller can test for, whatever pgx made of the interrupted query.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w (%v)", op, cerr, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func constraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

const (
	stateUniqueViolation = "23505"
	stateCheckViolation  = "23514" // also "no partition of relation found for row"
	stateDeadlock        = "40P01"
	stateSerialization   = "40001"
	stateUndefinedTable  = "42P01"
)

var _ iomt.Store = (*Store)(nil)
