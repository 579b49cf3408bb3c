package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The COPY write path. COPY streams rows in PostgreSQL's binary format, which spares the
// node building and encoding large arrays (the server's cost was measured about the same
// either way: README.md), but it cannot skip a row that is already stored: a duplicate
// would fail the whole COPY. So a large group is copied into a session temporary table (the
// staging table), then moved by the same INSERT ... ON CONFLICT DO NOTHING RETURNING
// statement the array path uses, in one transaction: duplicates are dropped and counted, and
// latest is updated from the rows inserted, exactly as before.
//
// The staging tables are created once per connection, the first time a writer uses it (a
// connection that never writes a large group never has them), and kept for the session. The
// transaction that fills them also empties them (DELETE, after the INSERT), so that no
// committed row is ever left in them; if it fails, what it copied is rolled back with it.
// The deleted rows stay in the table's file, and are scanned by later INSERTs, until the
// table is truncated: a large group, or one that brings them to a bound, truncates the
// tables instead of deleting its rows. Truncating at every commit (ON COMMIT DELETE ROWS)
// or creating the tables in each transaction (ON COMMIT DROP) was measured slower: see
// README.md.

const (
	stageObservations = "iomt_stage_observations"
	stageWaveforms    = "iomt_stage_waveforms"
	// stageKey holds a connection's *staging in its CustomData.
	stageKey = "iomt.store.postgres.staging"
	// Bounds on the dead rows left in the staging tables: they keep the scan of them to a
	// few hundred pages, within the session's temp_buffers (8 MB by default), while making
	// truncation (a catalog update) rare for small groups.
	stageMaxDeadRows    = 20000
	stageMaxDeadSamples = 1_000_000
)

// staging is what a connection's session knows of its staging tables.
type staging struct {
	created               bool
	deadRows, deadSamples int // copied since the last truncation
}

// stageMode is how the staging tables live; only benchmarks choose other than stageKeep.
type stageMode int

const (
	stageKeep       stageMode = iota // once per session, emptied by DELETE, truncated now and then
	stageDeleteRows                  // once per session, ON COMMIT DELETE ROWS
	stageDropPerTx                   // in each transaction, ON COMMIT DROP
)

// stagingColumns are the staging tables' columns, as CREATE TABLE declares them; "C" like
// the tables they feed, so that the join in the insert statements compares the same way.
const (
	stageObservationsColumns = `(
	tenant  text COLLATE "C" NOT NULL,
	patient text COLLATE "C" NOT NULL,
	device  text COLLATE "C" NOT NULL,
	code    text COLLATE "C" NOT NULL,
	time    timestamptz NOT NULL,
	value   double precision NOT NULL,
	unit    text COLLATE "C" NOT NULL,
	batch   integer NOT NULL)`
	stageWaveformsColumns = `(
	tenant    text COLLATE "C" NOT NULL,
	patient   text COLLATE "C" NOT NULL,
	device    text COLLATE "C" NOT NULL,
	code      text COLLATE "C" NOT NULL,
	start     timestamptz NOT NULL,
	stop      timestamptz NOT NULL,
	period_ns bigint NOT NULL,
	scale     double precision NOT NULL,
	unit      text COLLATE "C" NOT NULL,
	samples   integer[] NOT NULL,
	n         integer NOT NULL,
	batch     integer NOT NULL)`
)

// createStaging returns the statements (run with the simple protocol: one round trip) that
// create the staging tables with the given ON COMMIT action.
func createStaging(onCommit string) string {
	return `CREATE TEMP TABLE IF NOT EXISTS ` + stageObservations + ` ` + stageObservationsColumns + ` ON COMMIT ` + onCommit + `;
CREATE TEMP TABLE IF NOT EXISTS ` + stageWaveforms + ` ` + stageWaveformsColumns + ` ON COMMIT ` + onCommit
}

var (
	stageObservationsCols = []string{"tenant", "patient", "device", "code", "time", "value", "unit", "batch"}
	stageWaveformsCols    = []string{"tenant", "patient", "device", "code", "start", "stop", "period_ns", "scale", "unit", "samples", "n", "batch"}
)

// obsSource feeds a group's readings to CopyFrom. pgx encodes each row before asking for
// the next, so one row slice serves them all.
type obsSource struct {
	g   *groupRows
	i   int
	row []any
}

func (s *obsSource) Next() bool { s.i++; return s.i <= len(s.g.oTime) }
func (s *obsSource) Err() error { return nil }
func (s *obsSource) Values() ([]any, error) {
	g, i := s.g, s.i-1
	s.row = append(s.row[:0], g.oTenant[i], g.oPatient[i], g.oDevice[i], g.oCode[i], g.oTime[i], g.oValue[i], g.oUnit[i], g.oBatch[i])
	return s.row, nil
}

// waveSource feeds a group's waveform segments to CopyFrom.
type waveSource struct {
	g   *groupRows
	i   int
	row []any
}

func (s *waveSource) Next() bool { s.i++; return s.i <= len(s.g.wStart) }
func (s *waveSource) Err() error { return nil }
func (s *waveSource) Values() ([]any, error) {
	g, i := s.g, s.i-1
	s.row = append(s.row[:0], g.wTenant[i], g.wPatient[i], g.wDevice[i], g.wCode[i], g.wStart[i], g.wStop[i],
		g.wPeriod[i], g.wScale[i], g.wUnit[i], g.wSeg[i], g.wN[i], g.wBatch[i])
	return s.row, nil
}

// sendCopy writes a group in one explicit transaction: COPY into the staging tables (those
// the group uses them for), then b, which holds the insert statements, then COMMIT.
func (s *Store) sendCopy(ctx context.Context, g *groupRows, copyObs, copyWaves bool, b *pgx.Batch) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	data := conn.Conn().PgConn().CustomData()
	st, _ := data[stageKey].(*staging)
	if st == nil {
		st = &staging{}
		data[stageKey] = st
	}
	mode := s.opts.staging
	if !st.created && mode != stageDropPerTx {
		onCommit := "PRESERVE ROWS"
		if mode == stageDeleteRows {
			onCommit = "DELETE ROWS"
		}
		if _, err := conn.Exec(ctx, createStaging(onCommit)); err != nil {
			return fmt.Errorf("creating staging tables: %w", err)
		}
		st.created = true
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	// After Commit this does nothing; after a failure it ends the transaction, or, if ctx is
	// done, the pool drops the connection left inside it.
	defer tx.Rollback(ctx)
	// Rows copied now are dead once the transaction ends, deleted or rolled back.
	rows, samples := 0, 0
	if copyObs {
		rows += len(g.oTime)
	}
	if copyWaves {
		rows += len(g.wStart)
		samples = g.samples
	}
	// A large group, or one that brings the dead rows to their bound, empties the tables by
	// truncating them (in the transaction, so that its catalog update shares the commit's
	// flush), whose cost does not grow with the rows; a smaller one deletes its rows.
	truncate := mode == stageKeep && (st.deadRows+rows >= stageMaxDeadRows || st.deadSamples+samples >= stageMaxDeadSamples)
	err = s.fillStaging(ctx, tx, g, copyObs, copyWaves)
	if err == nil {
		switch {
		case truncate:
			b.Queue("TRUNCATE pg_temp." + stageObservations + ", pg_temp." + stageWaveforms)
		case mode == stageKeep && copyObs && copyWaves:
			b.Queue("DELETE FROM pg_temp." + stageObservations)
			b.Queue("DELETE FROM pg_temp." + stageWaveforms)
		case mode == stageKeep && copyObs:
			b.Queue("DELETE FROM pg_temp." + stageObservations)
		case mode == stageKeep:
			b.Queue("DELETE FROM pg_temp." + stageWaveforms)
		}
		err = tx.SendBatch(ctx, b).Close()
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	switch {
	case err == nil && truncate:
		st.deadRows, st.deadSamples = 0, 0
	case sqlState(err) == stateUndefinedTable:
		// The session lost its temporary tables (DISCARD by a pooler or an administrator):
		// create them again next time.
		*st = staging{}
	default:
		st.deadRows += rows
		st.deadSamples += samples
	}
	return err
}

func (s *Store) fillStaging(ctx context.Context, tx pgx.Tx, g *groupRows, copyObs, copyWaves bool) error {
	if s.opts.staging == stageDropPerTx {
		if _, err := tx.Exec(ctx, createStaging("DROP")); err != nil {
			return fmt.Errorf("creating staging tables: %w", err)
		}
	}
	if copyObs {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", stageObservations}, stageObservationsCols, &obsSource{g: g}); err != nil {
			return fmt.Errorf("copying readings: %w", err)
		}
	}
	if copyWaves {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", stageWaveforms}, stageWaveformsCols, &waveSource{g: g}); err != nil {
			return fmt.Errorf("copying waveform segments: %w", err)
		}
	}
	return nil
}
