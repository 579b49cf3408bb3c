package embedded

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// window converts a query's [From, To) to milliseconds; zero times are unbounded.
func window(from, to time.Time) (int64, int64) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = iomt.Millis(from)
	}
	if !to.IsZero() {
		hi = iomt.Millis(to)
	}
	return lo, hi
}

// obsSnap is what a query copies from one series under the lock.
type obsSnap struct {
	id             uint64
	device, unit   string
	head           []byte
	headStart      int64
	chunks         [][]byte // sealed, not yet persisted
	late           []sample
	persisted      bool
	skipPersistKey []byte // the persisted copy of the head, a subset of head
}

type seriesSamples struct {
	device, unit string
	smp          []sample
}

// collect returns, per series of (patient, code), its samples in [from, to) in time order.
func (s *Store) collect(ctx context.Context, patient, code string, from, to int64) ([]seriesSamples, error) {
	s.mu.Lock()
	var snaps []obsSnap
	for _, ser := range s.obsPat[patient][code] {
		if !ser.has {
			continue
		}
		sn := obsSnap{id: ser.id, device: ser.device, unit: ser.unit, persisted: ser.persisted}
		if ser.head != nil && ser.headStart < to && ser.lastT >= from {
			sn.head, sn.headStart = ser.head.bytes(false), ser.headStart
			sn.skipPersistKey = chunkKey(ser.id, ser.headStart, chunkMain)
		}
		for _, list := range [][]*memChunk{ser.sealedFl, ser.sealed} {
			for _, c := range list {
				if c.start < to && c.end >= from {
					sn.chunks = append(sn.chunks, c.data)
				}
			}
		}
		for _, list := range [][]sample{ser.lateFl, ser.late} {
			for _, x := range list {
				if x.t >= from && x.t < to {
					sn.late = append(sn.late, x)
				}
			}
		}
		snaps = append(snaps, sn)
	}
	s.mu.Unlock()

	out := make([]seriesSamples, 0, len(snaps))
	for _, sn := range snaps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		smp := getSamples()
		sorted := true
		add := func(chunk []byte) error {
			if n, _, _, _, _, err := chunkHeader(chunk); err == nil {
				smp = slices.Grow(smp, n)
			}
			n := len(smp)
			var err error
			if smp, _, err = decodeChunkRange(smp, chunk, from, to); err != nil {
				return err
			}
			if n > 0 && len(smp) > n && smp[n].t <= smp[n-1].t {
				sorted = false
			}
			return nil
		}
		if sn.persisted {
			lo, hi := chunkBounds(sn.id, windowOf(max(from, math.MinInt64+windowMs)), to)
			it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				return nil, err
			}
			for it.First(); it.Valid(); it.Next() {
				if sn.skipPersistKey != nil && string(it.Key()) == string(sn.skipPersistKey) {
					continue
				}
				v, err := it.ValueAndErr()
				if err == nil {
					err = add(v)
				}
				if err != nil {
					it.Close()
					return nil, fmt.Errorf("chunk %x: %w", it.Key(), err)
				}
			}
			if err := it.Close(); err != nil {
				return nil, err
			}
		}
		for _, c := range sn.chunks {
			if err := add(c); err != nil {
				return nil, err
			}
		}
		if sn.head != nil {
			if err := add(sn.head); err != nil {
				return nil, err
			}
		}
		if len(sn.late) > 0 {
			n := len(smp)
			smp = append(smp, sn.late...)
			if n > 0 {
				sorted = false
			}
		}
		if !sorted {
			slices.SortStableFunc(smp, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
			smp = slices.CompactFunc(smp, func(a, b sample) bool { return a.t == b.t })
		}
		if len(smp) > 0 {
			out = append(out, seriesSamples{device: sn.device, unit: sn.unit, smp: smp})
		} else {
			putSamples(smp)
		}
	}
	return out, nil
}

var samplePool sync.Pool

func getSamples() []sample {
	if p, ok := samplePool.Get().(*[]sample); ok {
		return (*p)[:0]
	}
	return nil
}

func putSamples(s []sample) {
	if cap(s) == 0 || cap(s) > 1<<20 {
		return
	}
	samplePool.Put(&s)
}

// release returns collect's buffers.
func release(all []seriesSamples) {
	for _, ss := range all {
		putSamples(ss.smp)
	}
}

func validateQuery(q iomt.ObservationQuery) error {
	if q.Patient == "" || q.Code == "" {
		return fmt.Errorf("%w: query needs patient and code", iomt.ErrInvalid)
	}
	if q.Limit < 0 {
		return fmt.Errorf("%w: negative limit", iomt.ErrInvalid)
	}
	return nil
}

// Observations implements iomt.SeriesStore. Zero From or To leave that end open; Step is
// ignored.
func (s *Store) Observations(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Observation, error) {
	if err := ctxErr(ctx, "observations"); err != nil {
		return nil, err
	}
	if err := validateQuery(q); err != nil {
		return nil, fmt.Errorf("embedded: observations: %w", err)
	}
	from, to := window(q.From, q.To)
	if from >= to {
		return []iomt.Observation{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: observations: %w", errClosed)
	}
	defer s.leave()
	all, err := s.collect(ctx, q.Patient, q.Code, from, to)
	if err != nil {
		return nil, fmt.Errorf("embedded: observations: %w", err)
	}
	defer release(all)
	n := 0
	for _, ss := range all {
		n += len(ss.smp)
	}
	if q.Limit > 0 && n > q.Limit && len(all) == 1 {
		n = q.Limit
	}
	out := make([]iomt.Observation, 0, n)
	for _, ss := range all {
		for _, x := range ss.smp {
			if len(all) == 1 && len(out) == n {
				break
			}
			out = append(out, iomt.Observation{
				Patient: q.Patient, Device: ss.device, Code: q.Code,
				Time: iomt.FromMillis(x.t), Value: x.v, Unit: ss.unit,
			})
		}
	}
	if len(all) > 1 {
		slices.SortStableFunc(out, func(a, b iomt.Observation) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return cmp.Compare(a.Device, b.Device)
		})
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// Aggregates implements iomt.SeriesStore: buckets of q.Step aligned to the Unix epoch, over
// every device's readings of the code.
func (s *Store) Aggregates(ctx context.Context, q iomt.ObservationQuery) ([]iomt.Aggregate, error) {
	if err := ctxErr(ctx, "aggregates"); err != nil {
		return nil, err
	}
	if err := validateQuery(q); err != nil {
		return nil, fmt.Errorf("embedded: aggregates: %w", err)
	}
	step := q.Step.Milliseconds()
	if step <= 0 || q.Step%time.Millisecond != 0 {
		return nil, fmt.Errorf("embedded: aggregates: %w: step must be a positive whole number of milliseconds", iomt.ErrInvalid)
	}
	from, to := window(q.From, q.To)
	if from >= to {
		return []iomt.Aggregate{}, nil
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: aggregates: %w", errClosed)
	}
	defer s.leave()
	all, err := s.collect(ctx, q.Patient, q.Code, from, to)
	if err != nil {
		return nil, fmt.Errorf("embedded: aggregates: %w", err)
	}
	defer release(all)
	type acc struct {
		min, max, sum float64
		n             int
	}
	var buckets []int64
	accs := map[int64]*acc{}
	for _, ss := range all {
		var cur *acc
		curB := int64(math.MinInt64)
		for _, x := range ss.smp {
			b := floorDiv(x.t, step) * step
			if cur == nil || b != curB {
				curB = b
				cur = accs[b]
				if cur == nil {
					cur = &acc{min: x.v, max: x.v}
					accs[b] = cur
					buckets = append(buckets, b)
				}
			}
			cur.min = math.Min(cur.min, x.v)
			cur.max = math.Max(cur.max, x.v)
			cur.sum += x.v
			cur.n++
		}
	}
	slices.Sort(buckets)
	out := make([]iomt.Aggregate, 0, len(buckets))
	for _, b := range buckets {
		a := accs[b]
		out = append(out, iomt.Aggregate{Time: iomt.FromMillis(b), Min: a.min, Max: a.max, Mean: a.sum / float64(a.n), Count: a.n})
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// Latest implements iomt.SeriesStore, from memory: O(series of the patient).
func (s *Store) Latest(ctx context.Context, patient string) ([]iomt.Observation, error) {
	if err := ctxErr(ctx, "latest"); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: latest: %w", errClosed)
	}
	defer s.leave()
	s.mu.Lock()
	defer s.mu.Unlock()
	byCode := s.obsPat[patient]
	out := make([]iomt.Observation, 0, len(byCode))
	for code, list := range byCode {
		var best *series
		for _, ser := range list {
			if !ser.has {
				continue
			}
			if best == nil || ser.lastT > best.lastT || (ser.lastT == best.lastT && ser.device < best.device) {
				best = ser
			}
		}
		if best != nil {
			out = append(out, iomt.Observation{
				Patient: patient, Device: best.device, Code: code,
				Time: iomt.FromMillis(best.lastT), Value: best.lastV, Unit: best.unit,
			})
		}
	}
	slices.SortFunc(out, func(a, b iomt.Observation) int { return cmp.Compare(a.Code, b.Code) })
	return out, nil
}

type waveSnap struct {
	id        uint64
	device    string
	unit      string
	maxDur    int64
	segs      []*wseg
	persisted bool
}

// Waveforms implements iomt.SeriesStore.
func (s *Store) Waveforms(ctx context.Context, q iomt.WaveformQuery) ([]iomt.Waveform, error) {
	if err := ctxErr(ctx, "waveforms"); err != nil {
		return nil, err
	}
	if q.Patient == "" || q.Code == "" {
		return nil, fmt.Errorf("embedded: waveforms: %w: query needs patient and code", iomt.ErrInvalid)
	}
	from, to := window(q.From, q.To)
	if from >= to {
		return []iomt.Waveform{}, nil
	}
	overlaps := func(g *wseg) bool {
		end := g.start + g.durMs()
		if end == g.start {
			end++
		}
		return g.start < to && end > from
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: waveforms: %w", errClosed)
	}
	defer s.leave()
	s.mu.Lock()
	var snaps []waveSnap
	for _, ws := range s.wavPat[q.Patient][q.Code] {
		sn := waveSnap{id: ws.id, device: ws.device, unit: ws.unit, maxDur: ws.maxDur, persisted: ws.persisted}
		for _, list := range [][]*wseg{ws.pendingFl, ws.pending} {
			for _, g := range list {
				if overlaps(g) {
					sn.segs = append(sn.segs, g)
				}
			}
		}
		snaps = append(snaps, sn)
	}
	s.mu.Unlock()

	var out []iomt.Waveform
	for _, sn := range snaps {
		segs := sn.segs
		if sn.persisted {
			lo := waveKey(sn.id, from-sn.maxDur-1)
			if from < math.MinInt64/2 {
				lo = waveKey(sn.id, math.MinInt64)
			}
			hi := waveKey(sn.id, to)
			if to == math.MaxInt64 {
				hi = waveKey(sn.id+1, math.MinInt64)
			}
			it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				return nil, fmt.Errorf("embedded: waveforms: %w", err)
			}
			for it.First(); it.Valid(); it.Next() {
				_, start, _ := parseWaveKey(it.Key())
				v, err := it.ValueAndErr()
				var g *wseg
				if err == nil {
					g, err = decodeWaveValue(start, v)
				}
				if err != nil {
					it.Close()
					return nil, fmt.Errorf("embedded: waveforms: segment %x: %w", it.Key(), err)
				}
				if overlaps(g) {
					segs = append(segs, g)
				}
			}
			if err := it.Close(); err != nil {
				return nil, fmt.Errorf("embedded: waveforms: %w", err)
			}
		}
		slices.SortStableFunc(segs, func(a, b *wseg) int { return cmp.Compare(a.start, b.start) })
		segs = slices.CompactFunc(segs, func(a, b *wseg) bool { return a.start == b.start })
		for _, g := range segs {
			samples, err := decodeWave(make([]int32, 0, g.n), g.data, g.n)
			if err != nil {
				return nil, fmt.Errorf("embedded: waveforms: %w", err)
			}
			out = append(out, iomt.Waveform{
				Patient: q.Patient, Device: sn.device, Code: q.Code, Start: iomt.FromMillis(g.start),
				Period: time.Duration(g.period), Scale: g.scale, Unit: sn.unit, Samples: samples,
			})
		}
	}
	if len(snaps) > 1 {
		slices.SortStableFunc(out, func(a, b iomt.Waveform) int {
			if c := a.Start.Compare(b.Start); c != 0 {
				return c
			}
			return cmp.Compare(a.Device, b.Device)
		})
	}
	if out == nil {
		out = []iomt.Waveform{}
	}
	return out, nil
}

func decodeWaveValue(start int64, v []byte) (*wseg, error) {
	d := decoder{b: v}
	period := d.uvarint()
	scale := d.float()
	n := d.uvarint()
	if d.err != nil || period == 0 || period > math.MaxInt64 || n == 0 || n > uint64(d.left()) {
		return nil, errCorruptWave
	}
	// Pebble's value is only valid until the iterator moves.
	return &wseg{start: start, period: int64(period), scale: scale, n: int(n), data: slices.Clone(v[d.p:])}, nil
}
