package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
)

// request is one Append call waiting for a group commit.
type request struct {
	ctx     context.Context
	batches []iomt.Batch
	rows    int // observations + waveform segments
	samples int // waveform samples
	dups    []int
	err     error
	done    chan struct{}
}

func checkText(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", iomt.ErrInvalid, what)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return fmt.Errorf("%w: %s contains a NUL byte", iomt.ErrInvalid, what)
		}
	}
	return nil
}

// checkFields runs checkText on pairs of (what, value).
func checkFields(fields ...string) error {
	for i := 0; i < len(fields); i += 2 {
		if err := checkText(fields[i], fields[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func checkTime(what string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: no %s", iomt.ErrInvalid, what)
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return fmt.Errorf("%w: %s %v out of range (years 1 to 9999)", iomt.ErrInvalid, what, t)
	}
	return nil
}

// waveDurMs is a segment's length in milliseconds, rounded up, at least 1 (as the embedded
// store counts it for overlap).
func waveDurMs(w *iomt.Waveform) int64 {
	d := int64(math.Ceil(float64(w.Period) * float64(len(w.Samples)) / 1e6))
	return max(d, 1)
}

// validate refuses a call with any bad batch before anything is queued: PostgreSQL would
// refuse a NUL byte or bad UTF-8 too, but only after it had failed the whole group, the
// other callers' good data included.
func validate(batches []iomt.Batch) (rows, samples int, err error) {
	for i := range batches {
		b := &batches[i]
		if err := checkFields("tenant", b.Tenant, "device", b.Device, "patient", b.Patient); err != nil {
			return 0, 0, fmt.Errorf("batch %d: %w", i, err)
		}
		for j := range b.Observations {
			o := &b.Observations[j]
			switch {
			case o.Patient == "" && b.Patient == "":
				err = fmt.Errorf("%w: no patient", iomt.ErrInvalid)
			case o.Device == "" && b.Device == "":
				err = fmt.Errorf("%w: no device", iomt.ErrInvalid)
			case o.Code == "":
				err = fmt.Errorf("%w: no code", iomt.ErrInvalid)
			default:
				err = checkTime("time", o.Time)
			}
			if err == nil {
				err = checkFields("patient", o.Patient, "device", o.Device, "code", o.Code, "unit", o.Unit)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("batch %d observation %d: %w", i, j, err)
			}
		}
		for j := range b.Waveforms {
			w := &b.Waveforms[j]
			switch {
			case w.Patient == "" && b.Patient == "":
				err = fmt.Errorf("%w: no patient", iomt.ErrInvalid)
			case w.Device == "" && b.Device == "":
				err = fmt.Errorf("%w: no device", iomt.ErrInvalid)
			case w.Code == "" || w.Period <= 0 || len(w.Samples) == 0:
				err = fmt.Errorf("%w: needs code, start, period > 0 and samples", iomt.ErrInvalid)
			default:
				err = checkTime("start", w.Start)
			}
			if err == nil && (float64(w.Period)*float64(len(w.Samples)) > float64(maxTime.Sub(w.Start)) || len(w.Samples) > math.MaxInt32/2) {
				err = fmt.Errorf("%w: segment ends after year 9999 or is too long", iomt.ErrInvalid)
			}
			if err == nil {
				err = checkFields("patient", w.Patient, "device", w.Device, "code", w.Code, "unit", w.Unit)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("batch %d waveform %d: %w", i, j, err)
			}
			samples += len(w.Samples)
		}
		rows += len(b.Observations) + len(b.Waveforms)
	}
	return rows, samples, nil
}

// Append implements iomt.SeriesStore. It returns when the transaction holding the batches
// (and those of concurrent calls) has committed. If ctx ends first, Append returns its error
// and the batches may or may not be stored: a retry finds them as duplicates.
func (s *Store) Append(ctx context.Context, batches []iomt.Batch) ([]int, error) {
	if err := ctxErr(ctx, "append"); err != nil {
		return nil, err
	}
	rows, samples, err := validate(batches)
	if err != nil {
		return nil, fmt.Errorf("postgres: append: %w", err)
	}
	if rows == 0 {
		return make([]int, len(batches)), nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("postgres: append: %w", errClosed)
	}
	defer s.leave()
	r := &request{ctx: ctx, batches: batches, rows: rows, samples: samples, done: make(chan struct{})}
	select {
	case s.queue <- r:
	case <-ctx.Done():
		return nil, ctxErr(ctx, "append")
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctxErr(ctx, "append")
	}
	if r.err != nil {
		return nil, fmt.Errorf("postgres: append: %w", r.err)
	}
	return r.dups, nil
}

// writer takes the queued requests, as many as one group may hold, and commits them together.
func (s *Store) writer() {
	defer s.writers.Done()
	for {
		var r *request
		select {
		case r = <-s.queue:
		case <-s.stop:
			return
		}
		group := []*request{r}
		rows, samples := r.rows, r.samples
	gather:
		for rows < s.opts.MaxGroupRows && samples < s.opts.MaxGroupSamples {
			select {
			case r := <-s.queue:
				group = append(group, r)
				rows += r.rows
				samples += r.samples
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup writes a group and answers its callers. Should the group fail as a whole, each
// request is tried alone, so that one caller's unforeseen bad data does not fail the others.
func (s *Store) commitGroup(group []*request) {
	live := group[:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// The transaction does not follow any one caller's context: it serves them all. A minute
	// bounds a stuck server.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.write(ctx, live)
	if err != nil && len(live) > 1 {
		s.log.Warn("postgres: group commit failed; retrying its requests one by one", "requests", len(live), "err", err)
		for _, r := range live {
			r.err = s.write(ctx, []*request{r})
			close(r.done)
		}
		return
	}
	for _, r := range live {
		r.err = err
		close(r.done)
	}
}

type obsKey struct {
	device, code string
	ms           int64
}

// groupRows is a group flattened into the arrays the INSERT statements unnest.
type groupRows struct {
	// observations
	oTenant, oPatient, oDevice, oCode, oUnit []string
	oTime                                    []time.Time
	oValue                                   []float64
	oBatch                                   []int32
	// waveform segments; their samples are concatenated in wSamples from wOff
	wTenant, wPatient, wDevice, wCode, wUnit []string
	wStart, wStop                            []time.Time
	wPeriod                                  []int64
	wScale                                   []float64
	wN, wBatch                               []int32
	wSeg                                     [][]int32 // each segment's samples, not copied
	samples                                  int       // over wSeg
	maxDur                                   int64
	days                                     []int64
}

type obsRow struct {
	key   obsKey
	o     *iomt.Observation
	b     *iomt.Batch
	batch int32
}

type waveRow struct {
	key   obsKey
	w     *iomt.Waveform
	b     *iomt.Batch
	batch int32
	dur   int64
}

// flatten builds the arrays of a group, skipping readings repeated within it (the first
// copy wins; later copies count as duplicates of their batch) and sorting the rest by
// identity, so that concurrent transactions take index locks in one order and do not
// deadlock. total[i] is the number of samples of batch i (numbered across the group); what
// the database does not insert of it is a duplicate.
func flatten(group []*request) (*groupRows, []int) {
	var nb int
	for _, r := range group {
		nb += len(r.batches)
	}
	total := make([]int, nb)
	var obs []obsRow
	var waves []waveRow
	seen := map[obsKey]struct{}{}
	seenW := map[obsKey]struct{}{}
	days := map[int64]struct{}{}
	bi := 0
	for _, r := range group {
		for i := range r.batches {
			b := &r.batches[i]
			for j := range b.Observations {
				o := &b.Observations[j]
				k := obsKey{cmp.Or(o.Device, b.Device), o.Code, iomt.Millis(o.Time)}
				total[bi]++
				if _, ok := seen[k]; ok {
					continue
				}
				seen[k] = struct{}{}
				days[dayOf(k.ms)] = struct{}{}
				obs = append(obs, obsRow{k, o, b, int32(bi)})
			}
			for j := range b.Waveforms {
				w := &b.Waveforms[j]
				k := obsKey{cmp.Or(w.Device, b.Device), w.Code, iomt.Millis(w.Start)}
				total[bi] += len(w.Samples)
				if _, ok := seenW[k]; ok {
					continue
				}
				seenW[k] = struct{}{}
				days[dayOf(k.ms)] = struct{}{}
				waves = append(waves, waveRow{k, w, b, int32(bi), waveDurMs(w)})
			}
			bi++
		}
	}
	byKey := func(a, b obsKey) int {
		if c := cmp.Compare(a.device, b.device); c != 0 {
			return c
		}
		if c := cmp.Compare(a.code, b.code); c != 0 {
			return c
		}
		return cmp.Compare(a.ms, b.ms)
	}
	slices.SortFunc(obs, func(a, b obsRow) int { return byKey(a.key, b.key) })
	slices.SortFunc(waves, func(a, b waveRow) int { return byKey(a.key, b.key) })

	g := &groupRows{}
	n := len(obs)
	g.oTenant, g.oPatient, g.oDevice, g.oCode, g.oUnit = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	g.oTime, g.oValue, g.oBatch = make([]time.Time, n), make([]float64, n), make([]int32, n)
	for i, x := range obs {
		g.oTenant[i] = cmp.Or(x.b.Tenant, iomt.DefaultTenant)
		g.oPatient[i] = cmp.Or(x.o.Patient, x.b.Patient)
		g.oDevice[i] = x.key.device
		g.oCode[i] = x.key.code
		g.oUnit[i] = x.o.Unit
		g.oTime[i] = iomt.FromMillis(x.key.ms)
		g.oValue[i] = x.o.Value
		g.oBatch[i] = x.batch
	}
	n = len(waves)
	g.wTenant, g.wPatient, g.wDevice, g.wCode, g.wUnit = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	g.wStart, g.wStop, g.wPeriod, g.wScale = make([]time.Time, n), make([]time.Time, n), make([]int64, n), make([]float64, n)
	g.wN, g.wBatch, g.wSeg = make([]int32, n), make([]int32, n), make([][]int32, n)
	for i, x := range waves {
		g.wTenant[i] = cmp.Or(x.b.Tenant, iomt.DefaultTenant)
		g.wPatient[i] = cmp.Or(x.w.Patient, x.b.Patient)
		g.wDevice[i] = x.key.device
		g.wCode[i] = x.key.code
		g.wUnit[i] = x.w.Unit
		g.wStart[i] = iomt.FromMillis(x.key.ms)
		g.wStop[i] = iomt.FromMillis(x.key.ms + x.dur)
		g.wPeriod[i] = int64(x.w.Period)
		g.wScale[i] = x.w.Scale
		g.wN[i] = int32(len(x.w.Samples))
		g.wBatch[i] = x.batch
		g.wSeg[i] = x.w.Samples
		g.samples += len(x.w.Samples)
		g.maxDur = max(g.maxDur, x.dur)
	}
	for d := range days {
		g.days = append(g.days, d)
	}
	return g, total
}

// The statements that insert a group come in two forms that share everything after their
// first CTE, u, which has the group's rows: unnested from arrays sent as parameters (one round
// trip), or read from a staging table that COPY has just filled (see copy.go).

// observationsTail inserts the new readings of u, upserts the latest reading of each
// (patient, code) from those actually inserted (a duplicate, even under another patient, is
// not a reading of this one), and returns the number inserted per batch.
const observationsTail = `
), ins AS (
	INSERT INTO observations (tenant, patient, device, code, time, value, unit)
	SELECT tenant, patient, device, code, time, value, unit FROM u
	ON CONFLICT (device, code, time) DO NOTHING
	RETURNING tenant, patient, device, code, time, value, unit
), lat AS (
	INSERT INTO latest AS l (patient, code, tenant, device, time, value, unit)
	SELECT DISTINCT ON (patient, code) patient, code, tenant, device, time, value, unit
	FROM ins ORDER BY patient, code, time DESC, device
	ON CONFLICT (patient, code) DO UPDATE
		SET tenant = excluded.tenant, device = excluded.device, time = excluded.time, value = excluded.value, unit = excluded.unit
		WHERE excluded.time > l.time OR (excluded.time = l.time AND excluded.device < l.device)
)
SELECT u.batch, count(*) FROM ins JOIN u USING (device, code, time) GROUP BY u.batch`

const insertObservations = `
WITH u AS MATERIALIZED (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::float8[], $7::text[], $8::int4[])
		AS u(tenant, patient, device, code, time, value, unit, batch)` + observationsTail

// insertStagedObservations reads the staging table itself (NOT MATERIALIZED) rather than a
// copy of it in the CTE. A sequential scan of a table COPY has just filled returns the rows
// in the order they were copied, the identity order flatten sorted them in, so index locks
// are taken in that order as on the array path.
const insertStagedObservations = `
WITH u AS NOT MATERIALIZED (
	SELECT tenant, patient, device, code, time, value, unit, batch FROM pg_temp.` + stageObservations + observationsTail

// insertWaveforms slices each segment's samples out of one flat array ($13), which keeps the
// whole group one statement (unnest cannot take an array of arrays of different lengths).
const insertWaveforms = `
WITH u AS MATERIALIZED (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::int8[], $8::float8[], $9::text[], $10::int4[], $11::int4[], $12::int4[])
		AS u(tenant, patient, device, code, start, stop, period_ns, scale, unit, n, off, batch)
), ins AS (
	INSERT INTO waveforms (tenant, patient, device, code, start, stop, period_ns, scale, unit, samples)
	SELECT tenant, patient, device, code, start, stop, period_ns, scale, unit, ($13::int4[])[off + 1 : off + n] FROM u
	ON CONFLICT (device, code, start) DO NOTHING
	RETURNING device, code, start
)
SELECT u.batch, sum(u.n) FROM ins JOIN u USING (device, code, start) GROUP BY u.batch`

// insertStagedWaveforms: COPY sends each segment's samples as its own array, so nothing is
// sliced.
const insertStagedWaveforms = `
WITH u AS NOT MATERIALIZED (
	SELECT * FROM pg_temp.` + stageWaveforms + `
), ins AS (
	INSERT INTO waveforms (tenant, patient, device, code, start, stop, period_ns, scale, unit, samples)
	SELECT tenant, patient, device, code, start, stop, period_ns, scale, unit, samples FROM u
	ON CONFLICT (device, code, start) DO NOTHING
	RETURNING device, code, start
)
SELECT u.batch, sum(u.n) FROM ins JOIN u USING (device, code, start) GROUP BY u.batch`

// write commits a group in one transaction and fills in each request's duplicates.
func (s *Store) write(ctx context.Context, group []*request) error {
	g, total := flatten(group)
	if err := s.ensurePartitions(ctx, g.days); err != nil {
		return err
	}
	s.spanMu.Lock()
	growSpan := g.maxDur > s.span
	s.spanMu.Unlock()

	var inserted []int
	for attempt := 0; ; attempt++ {
		inserted = make([]int, len(total))
		err := s.send(ctx, g, growSpan, inserted)
		if err == nil {
			break
		}
		state := sqlState(err)
		retry := attempt < 5 && (state == stateDeadlock || state == stateSerialization) ||
			attempt == 0 && state == stateUndefinedTable // staging tables lost; sendCopy makes them again
		if attempt < 2 && state == stateCheckViolation {
			// Most likely another node dropped a partition this Store believed in.
			s.forgetPartitions()
			if perr := s.ensurePartitions(ctx, g.days); perr != nil {
				return perr
			}
			retry = true
		}
		if !retry {
			return wrap(ctx, "write", err)
		}
		s.log.Debug("postgres: retrying group commit", "err", err)
	}
	if growSpan {
		s.spanMu.Lock()
		s.span = max(s.span, g.maxDur)
		s.spanMu.Unlock()
	}
	bi := 0
	for _, r := range group {
		r.dups = make([]int, len(r.batches))
		for i := range r.batches {
			r.dups[i] = total[bi] - inserted[bi]
			bi++
		}
	}
	return nil
}

// send writes a group in one transaction. A small group goes as one pipeline of array
// statements: pgx sends a batch with a single Sync, so the server runs it as one implicit
// transaction, committed (and flushed, with synchronous_commit on) before the last reply.
// The readings, or the waveform segments, go through COPY instead when the group holds at
// least Options.CopyMinRows of them, or CopyMinSamples samples (see copy.go).
func (s *Store) send(ctx context.Context, g *groupRows, growSpan bool, inserted []int) error {
	samples := g.samples
	copyObs := len(g.oTime) > 0 && s.opts.CopyMinRows > 0 && len(g.oTime) >= s.opts.CopyMinRows
	copyWaves := samples > 0 && s.opts.CopyMinSamples > 0 && samples >= s.opts.CopyMinSamples
	b := &pgx.Batch{}
	count := func(rows pgx.Rows) error {
		var batch int32
		var n int64
		_, err := pgx.ForEachRow(rows, []any{&batch, &n}, func() error {
			if batch < 0 || int(batch) >= len(inserted) {
				return errors.New("server returned an unknown batch number")
			}
			inserted[batch] += int(n)
			return nil
		})
		return err
	}
	switch {
	case copyObs:
		b.Queue(insertStagedObservations).Query(count)
	case len(g.oTime) > 0:
		b.Queue(insertObservations, g.oTenant, g.oPatient, g.oDevice, g.oCode, g.oTime, g.oValue, g.oUnit, g.oBatch).
			Query(count)
	}
	switch {
	case copyWaves:
		b.Queue(insertStagedWaveforms).Query(count)
	case len(g.wStart) > 0:
		off := make([]int32, len(g.wSeg))
		var ns int
		for i, seg := range g.wSeg {
			off[i] = int32(ns)
			ns += len(seg)
		}
		flat := make([]int32, 0, samples)
		for _, seg := range g.wSeg {
			flat = append(flat, seg...)
		}
		b.Queue(insertWaveforms, g.wTenant, g.wPatient, g.wDevice, g.wCode, g.wStart, g.wStop, g.wPeriod, g.wScale, g.wUnit, g.wN, off, g.wBatch, flat).
			Query(count)
	}
	if growSpan {
		b.Queue("UPDATE waveform_span SET max_ms = $1 WHERE max_ms < $1", g.maxDur)
	}
	var err error
	if copyObs || copyWaves {
		err = s.sendCopy(ctx, g, copyObs, copyWaves, b)
	} else {
		err = s.pool.SendBatch(ctx, b).Close()
	}
	if err != nil {
		return err
	}
	s.commits.Add(1)
	return nil
}
