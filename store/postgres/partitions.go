package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	dayMs = int64(24 * time.Hour / time.Millisecond)
	// Readings before 2000 (a device whose clock was reset, a test fixture) share one
	// partition, MINVALUE to 2000-01-01, instead of one per day: a 1970 clock must not
	// create thousands of tables. It is an ordinary range, not a DEFAULT partition, so
	// creating a daily partition never has to scan it.
	ms2000 = int64(946684800000)
	// preDay is the day key of that partition.
	preDay = math.MinInt64
)

// Times a reading may carry: timestamptz reaches further, but partition names and sane
// clocks do not.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// partitioned are the tables partitioned by day, with their partition key.
var partitioned = []string{"observations", "waveforms"}

// dayOf returns the partition day of a time in Unix milliseconds.
func dayOf(ms int64) int64 {
	if ms < ms2000 {
		return preDay
	}
	return ms / dayMs // ms >= ms2000 > 0: no negative rounding to mind
}

// partitionName is parent_pYYYYMMDD, or parent_ppre2000.
func partitionName(parent string, day int64) string {
	if day == preDay {
		return parent + "_ppre2000"
	}
	return parent + "_p" + time.UnixMilli(day*dayMs).UTC().Format("20060102")
}

func tsLiteral(ms int64) string {
	return "'" + time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") + "+00'"
}

// bounds returns the FOR VALUES clause of a day's partition.
func bounds(day int64) string {
	if day == preDay {
		return "FROM (MINVALUE) TO (" + tsLiteral(ms2000) + ")"
	}
	return "FROM (" + tsLiteral(day*dayMs) + ") TO (" + tsLiteral((day+1)*dayMs) + ")"
}

// ensurePartitions creates the partitions of the given days that this Store has not seen yet.
func (s *Store) ensurePartitions(ctx context.Context, days []int64) error {
	s.partMu.Lock()
	var missing []int64
	for _, d := range days {
		if !s.parts[d] && !slices.Contains(missing, d) {
			missing = append(missing, d)
		}
	}
	s.partMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	// One transaction, serialised across nodes by an advisory lock, so two nodes never race
	// to create the same table.
	var created []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		created = created[:0]
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockPartitions); err != nil {
			return err
		}
		for _, d := range missing {
			for _, parent := range partitioned {
				name := partitionName(parent, d)
				var exists bool
				if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
					return err
				}
				if exists {
					continue
				}
				// Create, then attach: ATTACH PARTITION needs only a SHARE UPDATE EXCLUSIVE
				// lock on the parent, where CREATE TABLE ... PARTITION OF takes ACCESS
				// EXCLUSIVE and would stall every writer and reader of the table meanwhile.
				sql := fmt.Sprintf("CREATE TABLE %[1]s (LIKE %[2]s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);\n"+
					"ALTER TABLE %[2]s ATTACH PARTITION %[1]s FOR VALUES %[3]s", name, parent, bounds(d))
				if _, err := tx.Conn().PgConn().Exec(ctx, sql).ReadAll(); err != nil {
					return fmt.Errorf("creating partition %s: %w", name, err)
				}
				created = append(created, name)
			}
		}
		return nil
	})
	if err != nil {
		return wrap(ctx, "partitions", err)
	}
	if len(created) > 0 {
		s.log.Info("postgres: created partitions", "tables", created)
	}
	s.partMu.Lock()
	for _, d := range missing {
		s.parts[d] = true
	}
	s.partMu.Unlock()
	return nil
}

// forgetPartitions clears the cache of known partitions, after another node dropped one.
func (s *Store) forgetPartitions() {
	s.partMu.Lock()
	clear(s.parts)
	s.partMu.Unlock()
}

// precreate makes sure the partitions from yesterday to PrecreateDays ahead exist.
func (s *Store) precreate(ctx context.Context) error {
	today := dayOf(time.Now().UnixMilli())
	var days []int64
	for d := today - 1; d <= today+int64(s.opts.PrecreateDays); d++ {
		days = append(days, d)
	}
	return s.ensurePartitions(ctx, days)
}

// partitionInfo is one partition of observations or waveforms, as named by this package.
type partitionInfo struct {
	name string
	day  int64
	end  int64 // exclusive upper bound, Unix ms
}

// partitions lists the partitions of observations and waveforms that this package created;
// any other partition an administrator attached is left alone.
func (s *Store) partitions(ctx context.Context) ([]partitionInfo, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT c.relname::text, p.relname::text
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE i.inhparent IN ('observations'::regclass, 'waveforms'::regclass)
		ORDER BY 1`)
	var out []partitionInfo
	var name, parent string
	_, err := pgx.ForEachRow(rows, []any{&name, &parent}, func() error {
		suffix, ok := strings.CutPrefix(name, parent+"_p")
		if !ok {
			return nil
		}
		if suffix == "pre2000" {
			out = append(out, partitionInfo{name: name, day: preDay, end: ms2000})
			return nil
		}
		t, err := time.Parse("20060102", suffix)
		d := t.UnixMilli() / dayMs
		if err != nil || partitionName(parent, d) != name {
			return nil
		}
		out = append(out, partitionInfo{name: name, day: d, end: (d + 1) * dayMs})
		return nil
	})
	return out, err
}

// DropBefore drops the partitions of observations and waveforms that hold only data older
// than t (retention), and the latest readings that were in them. It returns the names of the
// tables dropped. Each partition is dropped in its own short transaction that waits at most
// 10 s for its lock: dropping a partition locks the parent table exclusively for a moment.
func (s *Store) DropBefore(ctx context.Context, t time.Time) ([]string, error) {
	if err := ctxErr(ctx, "drop before"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: drop before: %w", errClosed)
	}
	defer s.leave()
	limit := t.UnixMilli()
	all, err := s.partitions(ctx)
	if err != nil {
		return nil, wrap(ctx, "drop before", err)
	}
	var dropped []string
	end := int64(math.MinInt64)
	for _, p := range all {
		if p.end > limit {
			continue
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockPartitions); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.name}.Sanitize())
			return err
		})
		if err != nil {
			return dropped, wrap(ctx, "drop before: "+p.name, err)
		}
		s.log.Info("postgres: dropped partition", "table", p.name)
		dropped = append(dropped, p.name)
		end = max(end, p.end)
		s.partMu.Lock()
		delete(s.parts, p.day)
		s.partMu.Unlock()
	}
	if len(dropped) > 0 {
		// Every reading before end is gone, so is any latest reading before it.
		if _, err := s.pool.Exec(ctx, "DELETE FROM latest WHERE time < $1", time.UnixMilli(end)); err != nil {
			return dropped, wrap(ctx, "drop before: latest", err)
		}
	}
	return dropped, nil
}
