package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/iomt/iomt"
)

// pendSample is an accepted sample waiting to be encoded into the WAL record.
type pendSample struct {
	id uint64
	t  int64
	v  float64
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func windowOf(t int64) int64 { return floorDiv(t, windowMs) * windowMs }

func validateBatches(batches []iomt.Batch) error {
	for i, b := range batches {
		for j, o := range b.Observations {
			if o.Patient == "" && b.Patient == "" {
				return fmt.Errorf("%w: batch %d observation %d: no patient", iomt.ErrInvalid, i, j)
			}
			if o.Device == "" && b.Device == "" {
				return fmt.Errorf("%w: batch %d observation %d: no device", iomt.ErrInvalid, i, j)
			}
			if o.Code == "" {
				return fmt.Errorf("%w: batch %d observation %d: no code", iomt.ErrInvalid, i, j)
			}
			if o.Time.IsZero() {
				return fmt.Errorf("%w: batch %d observation %d: no time", iomt.ErrInvalid, i, j)
			}
		}
		for j, w := range b.Waveforms {
			if w.Patient == "" && b.Patient == "" {
				return fmt.Errorf("%w: batch %d waveform %d: no patient", iomt.ErrInvalid, i, j)
			}
			if w.Device == "" && b.Device == "" {
				return fmt.Errorf("%w: batch %d waveform %d: no device", iomt.ErrInvalid, i, j)
			}
			if w.Code == "" || w.Start.IsZero() || w.Period <= 0 || len(w.Samples) == 0 {
				return fmt.Errorf("%w: batch %d waveform %d: needs code, start, period > 0 and samples", iomt.ErrInvalid, i, j)
			}
		}
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Append implements iomt.SeriesStore.
func (s *Store) Append(ctx context.Context, batches []iomt.Batch) ([]int, error) {
	return s.AppendStaged(ctx, batches, nil)
}

// AppendStaged implements iomt.StagedAppender: staged runs once the readings are in memory
// (and visible to queries) and queued for the next group commit.
func (s *Store) AppendStaged(ctx context.Context, batches []iomt.Batch, staged func(duplicates []int)) ([]int, error) {
	if err := ctxErr(ctx, "append"); err != nil {
		return nil, err
	}
	if err := validateBatches(batches); err != nil {
		return nil, fmt.Errorf("embedded: append: %w", err)
	}
	if !s.enter() {
		return nil, fmt.Errorf("embedded: append: %w", errClosed)
	}
	defer s.leave()
	dups := make([]int, len(batches))
	s.mu.Lock()
	if s.walErr != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("embedded: append: wal failed earlier: %w", s.walErr)
	}
	var dc dupCache
	acc := s.sampleCk[:0]
	mark := len(s.pend)
	var err error
	for i := range batches {
		b := &batches[i]
		for j := range b.Observations {
			o := &b.Observations[j]
			ser := s.obsSeries(or(o.Patient, b.Patient), o.Code, or(o.Device, b.Device), o.Unit, true)
			t := iomt.Millis(o.Time)
			var dup bool
			dup, err = s.insertObs(ser, t, o.Value, &dc)
			if err != nil {
				break
			}
			if dup {
				dups[i]++
				continue
			}
			acc = append(acc, pendSample{ser.id, t, o.Value})
		}
		if err != nil {
			break
		}
		// Encode the samples so far: waveform entries must follow their series definitions.
		s.pend = encodeSamples(s.pend, acc)
		acc = acc[:0]
		for j := range b.Waveforms {
			w := &b.Waveforms[j]
			ws := s.waveSeries(or(w.Patient, b.Patient), w.Code, or(w.Device, b.Device), w.Unit, true)
			seg := &wseg{start: iomt.Millis(w.Start), period: int64(w.Period), scale: w.Scale, n: len(w.Samples)}
			var dup bool
			dup, err = s.waveExists(ws, seg.start)
			if err != nil {
				break
			}
			if dup {
				dups[i] += len(w.Samples)
				continue
			}
			seg.data = encodeWave(nil, w.Samples)
			s.insertWave(ws, seg)
			s.pend = appendWaveEntry(s.pend, ws.id, seg.start, seg.period, seg.scale, seg.n, seg.data)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		// What was inserted in memory before the error is logged too, so that memory and WAL
		// agree; the caller sees the error and retries, finding those readings duplicates
		// (and waiting for the same group commit).
		s.pend = encodeSamples(s.pend, acc)
		s.log.Error("embedded: append failed part way", "err", err)
	}
	s.sampleCk = acc[:0]
	if len(s.pend) > mark && s.walBytes+int64(len(s.pend)) > s.opts.CheckpointBytes {
		select {
		case s.ckptKick <- struct{}{}:
		default:
		}
	}
	// Wait for everything pending, not only our own entries: a duplicate we skipped may still
	// be waiting for its fsync in another caller's group.
	g := s.waitGroup()
	s.mu.Unlock()
	if err == nil && staged != nil {
		staged(dups)
	}
	if g != nil {
		<-g.done
		if g.err != nil {
			return nil, fmt.Errorf("embedded: append: %w", g.err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: append: %w", err)
	}
	return dups, nil
}

// encodeSamples appends entSamples entries for acc, one per run of the same series.
func encodeSamples(b []byte, acc []pendSample) []byte {
	for i := 0; i < len(acc); {
		j := i + 1
		for j < len(acc) && acc[j].id == acc[i].id {
			j++
		}
		b = append(b, entSamples)
		b = binary.AppendUvarint(b, acc[i].id)
		b = binary.AppendUvarint(b, uint64(j-i))
		var prev int64
		for _, p := range acc[i:j] {
			b = binary.AppendVarint(b, p.t-prev)
			prev = p.t
			b = appendFloat(b, p.v)
		}
		i = j
	}
	return b
}

// group is one group commit: the WAL entries gathered while the previous group was being
// written, written and fsynced together.
type group struct {
	done chan struct{} // closed when written (or failed)
	err  error
	seq  uint64 // the WAL segment current after the write (and rotation, if asked)
}

func newGroup() *group { return &group{done: make(chan struct{})} }

// waitGroup returns the group whose completion makes everything appended so far durable, or
// nil if it already is, and wakes the committer. s.mu is held.
func (s *Store) waitGroup() *group {
	var g *group
	switch {
	case len(s.pend) > recHeader:
		g = s.cur
	case s.rotGroup != nil:
		g = s.rotGroup
	default:
		return s.inflight
	}
	select {
	case s.commitKick <- struct{}{}:
	default:
	}
	return g
}

// committer writes the pending WAL record whenever there is one: while it writes and fsyncs
// one group, the next gathers.
func (s *Store) committer() {
	defer close(s.commitDone)
	for {
		select {
		case <-s.commitKick:
		case <-s.commitStop:
			return
		}
		for {
			s.mu.Lock()
			var frame []byte
			var g *group
			rot := false
			switch {
			case s.rotGroup != nil:
				// A checkpoint's frame: it precedes everything in pend.
				frame, g, rot = s.rotFrame, s.rotGroup, true
				s.rotFrame, s.rotGroup = nil, nil
			case len(s.pend) > recHeader:
				frame, g = s.pend, s.cur
				s.pend = s.newPend()
				s.cur = newGroup()
			default:
				s.mu.Unlock()
			}
			if g == nil {
				break
			}
			s.inflight = g
			s.mu.Unlock()

			err := s.wal.write(frame)
			s.commits.Add(1)
			if err == nil && rot && s.wal.size > 0 {
				err = s.wal.rotate()
			}
			g.seq, g.err = s.wal.seq, err

			s.mu.Lock()
			s.inflight = nil
			if cap(frame) <= 16<<20 {
				s.spare = frame[:0]
			}
			if err != nil {
				s.walErr = err
				s.log.Error("embedded: wal write failed; refusing further appends", "err", err)
			} else if rot {
				s.walBytes = 0
			} else {
				s.walBytes += int64(len(frame))
			}
			s.mu.Unlock()
			close(g.done)
			if err != nil {
				s.failPending(err)
				return
			}
			// Let the callers just released append again before taking the next group, so
			// that groups stay large when many callers wait.
			runtime.Gosched()
		}
	}
}

// newPend returns an empty pending record, reusing the last written one. s.mu is held.
func (s *Store) newPend() []byte {
	if cap(s.spare) > 0 {
		p := s.spare[:recHeader]
		s.spare = nil
		return p
	}
	return make([]byte, recHeader, 64<<10)
}

// failPending fails the group gathering now, after a write error. Its callers are told; the
// data stays in memory but is not acknowledged.
func (s *Store) failPending(err error) {
	s.mu.Lock()
	g := s.cur
	s.cur = newGroup()
	s.pend = s.pend[:recHeader]
	s.mu.Unlock()
	g.err = err
	close(g.done)
}

// obsSeries finds or (with create) makes the series; a new series or a changed unit adds a
// definition entry to the pending WAL record.
func (s *Store) obsSeries(patient, code, device, unit string, log bool) *series {
	name := seriesName{patient, code, device}
	ser := s.obs[name]
	if ser == nil {
		ser = &series{id: s.nextID, patient: patient, code: code, device: device, unit: unit, defDirty: true}
		s.nextID++
		s.addObsSeries(ser)
		if log {
			s.pend = appendSeriesEntry(s.pend, kindObs, ser.id, patient, code, device, unit)
		}
		s.dirty[ser.id] = struct{}{}
	} else if unit != "" && unit != ser.unit {
		ser.unit = unit
		ser.defDirty = true
		s.dirty[ser.id] = struct{}{}
		if log {
			s.pend = appendSeriesEntry(s.pend, kindObs, ser.id, patient, code, device, unit)
		}
	}
	return ser
}

func (s *Store) addObsSeries(ser *series) {
	s.obs[seriesName{ser.patient, ser.code, ser.device}] = ser
	s.obsByID[ser.id] = ser
	byCode := s.obsPat[ser.patient]
	if byCode == nil {
		byCode = map[string][]*series{}
		s.obsPat[ser.patient] = byCode
	}
	byCode[ser.code] = append(byCode[ser.code], ser)
	dk := devCode{ser.device, ser.code}
	s.obsDev[dk] = append(s.obsDev[dk], ser)
	if list := s.obsDev[dk]; len(list) > 1 {
		for _, o := range list {
			o.shared = true
		}
	}
	if ser.id >= s.nextID {
		s.nextID = ser.id + 1
	}
}

func (s *Store) waveSeries(patient, code, device, unit string, log bool) *wseries {
	name := seriesName{patient, code, device}
	ws := s.wav[name]
	if ws == nil {
		ws = &wseries{id: s.nextID, patient: patient, code: code, device: device, unit: unit, defDirty: true}
		s.nextID++
		s.addWaveSeries(ws)
		if log {
			s.pend = appendSeriesEntry(s.pend, kindWave, ws.id, patient, code, device, unit)
		}
		s.dirty[ws.id] = struct{}{}
	} else if unit != "" && unit != ws.unit {
		ws.unit = unit
		ws.defDirty = true
		s.dirty[ws.id] = struct{}{}
		if log {
			s.pend = appendSeriesEntry(s.pend, kindWave, ws.id, patient, code, device, unit)
		}
	}
	return ws
}

func (s *Store) addWaveSeries(ws *wseries) {
	s.wav[seriesName{ws.patient, ws.code, ws.device}] = ws
	s.wavByID[ws.id] = ws
	byCode := s.wavPat[ws.patient]
	if byCode == nil {
		byCode = map[string][]*wseries{}
		s.wavPat[ws.patient] = byCode
	}
	byCode[ws.code] = append(byCode[ws.code], ws)
	dk := devCode{ws.device, ws.code}
	s.wavDev[dk] = append(s.wavDev[dk], ws)
	if ws.id >= s.nextID {
		s.nextID = ws.id + 1
	}
}

// insertObs stores one sample unless (device, code, t) is already stored. s.mu is held.
func (s *Store) insertObs(ser *series, t int64, v float64, dc *dupCache) (dup bool, err error) {
	inOrder := !ser.has || t > ser.lastT
	if !inOrder {
		if dup, err = s.obsExists(ser, t, dc); dup || err != nil {
			return dup, err
		}
	}
	// The same device may have sent this reading for another patient it was bound to before.
	if ser.shared {
		others := s.obsDev[devCode{ser.device, ser.code}]
		for _, o := range others {
			if o == ser || !o.has || t > o.lastT {
				continue
			}
			if dup, err = s.obsExists(o, t, dc); dup || err != nil {
				return dup, err
			}
		}
	}
	if !ser.inDirty {
		s.dirty[ser.id] = struct{}{}
		ser.inDirty = true
	}
	if inOrder {
		if ser.head != nil && (ser.head.n >= maxChunkSamples || windowOf(t) != windowOf(ser.headStart)) {
			ser.sealed = append(ser.sealed, &memChunk{start: ser.headStart, end: ser.lastT, data: ser.head.bytes(true)})
			ser.head = nil
		}
		if ser.head == nil {
			ser.head = newChunkEnc()
			ser.headStart = t
		}
		ser.head.append(t, v)
		ser.headDirty = true
		ser.has, ser.lastT, ser.lastV = true, t, v
		dc.noteHead(ser, t)
		return false, nil
	}
	i := sort.Search(len(ser.late), func(i int) bool { return ser.late[i].t >= t })
	ser.late = slices.Insert(ser.late, i, sample{t, v})
	return false, nil
}

// dupCache holds decoded timestamps for the duration of one Append call (or one replay
// record), so that a burst of late samples decodes each chunk once.
type dupCache struct {
	heads  map[*series][]int64
	mem    map[*memChunk][]int64
	chunks map[string][]int64
}

func (dc *dupCache) noteHead(ser *series, t int64) {
	if ts, ok := dc.heads[ser]; ok {
		dc.heads[ser] = append(ts, t)
	}
}

func decodeTimes(b []byte) ([]int64, error) {
	smp, _, err := decodeChunk(nil, b)
	if err != nil {
		return nil, err
	}
	ts := make([]int64, len(smp))
	for i, x := range smp {
		ts[i] = x.t
	}
	slices.Sort(ts)
	return ts, nil
}

func containsTime(ts []int64, t int64) bool {
	_, ok := slices.BinarySearch(ts, t)
	return ok
}

func searchLate(late []sample, t int64) bool {
	i := sort.Search(len(late), func(i int) bool { return late[i].t >= t })
	return i < len(late) && late[i].t == t
}

// obsExists reports whether ser holds a sample at t (t <= ser.lastT). s.mu is held.
func (s *Store) obsExists(ser *series, t int64, dc *dupCache) (bool, error) {
	if searchLate(ser.late, t) || searchLate(ser.lateFl, t) {
		return true, nil
	}
	if ser.head != nil && t >= ser.headStart {
		ts, ok := dc.heads[ser]
		if !ok {
			var err error
			if ts, err = decodeTimes(ser.head.bytes(false)); err != nil {
				return false, err
			}
			if dc.heads == nil {
				dc.heads = map[*series][]int64{}
			}
			dc.heads[ser] = ts
		}
		if containsTime(ts, t) {
			return true, nil
		}
	}
	for _, list := range [][]*memChunk{ser.sealed, ser.sealedFl} {
		for _, c := range list {
			if t < c.start || t > c.end {
				continue
			}
			ts, ok := dc.mem[c]
			if !ok {
				var err error
				if ts, err = decodeTimes(c.data); err != nil {
					return false, err
				}
				if dc.mem == nil {
					dc.mem = map[*memChunk][]int64{}
				}
				dc.mem[c] = ts
			}
			if containsTime(ts, t) {
				return true, nil
			}
		}
	}
	if !ser.persisted {
		return false, nil
	}
	w := windowOf(t)
	lo, hi := chunkBounds(ser.id, w, w+windowMs)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		_, start, kind, ok := parseChunkKey(it.Key())
		if !ok || (kind == chunkMain && start > t) {
			continue
		}
		key := string(it.Key())
		ts, ok := dc.chunks[key]
		if !ok {
			v, err := it.ValueAndErr()
			if err != nil {
				return false, err
			}
			if ts, err = dc.chunkTimes(key, v); err != nil {
				return false, fmt.Errorf("chunk %x: %w", it.Key(), err)
			}
		}
		if containsTime(ts, t) {
			return true, nil
		}
	}
	return false, it.Error()
}

func (dc *dupCache) chunkTimes(key string, data []byte) ([]int64, error) {
	if ts, ok := dc.chunks[key]; ok {
		return ts, nil
	}
	ts, err := decodeTimes(data)
	if err != nil {
		return nil, err
	}
	if dc.chunks == nil {
		dc.chunks = map[string][]int64{}
	}
	dc.chunks[key] = ts
	return ts, nil
}

// waveExists reports whether a segment of ws's device and code starting at start is stored,
// under ws's patient or any other the device was bound to.
func (s *Store) waveExists(ws *wseries, start int64) (bool, error) {
	for _, o := range s.wavDev[devCode{ws.device, ws.code}] {
		if !o.has || start > o.lastStart {
			continue
		}
		for _, list := range [][]*wseg{o.pending, o.pendingFl} {
			for _, g := range list {
				if g.start == start {
					return true, nil
				}
			}
		}
		if o.persisted {
			_, closer, err := s.db.Get(waveKey(o.id, start))
			if err == nil {
				closer.Close()
				return true, nil
			}
			if !errors.Is(err, pebble.ErrNotFound) {
				return false, err
			}
		}
	}
	return false, nil
}

func (s *Store) insertWave(ws *wseries, seg *wseg) {
	ws.pending = append(ws.pending, seg)
	if !ws.has || seg.start > ws.lastStart {
		ws.lastStart = seg.start
	}
	ws.has = true
	if d := seg.durMs(); d > ws.maxDur {
		ws.maxDur = d
		ws.defDirty = true
	}
	s.dirty[ws.id] = struct{}{}
}

// replayer applies WAL entries on Open.
type replayer struct{ s *Store }

func (r replayer) walSeries(kind byte, id uint64, patient, code, device, unit string) error {
	s := r.s
	if kind == kindObs {
		if ser := s.obsByID[id]; ser != nil {
			if ser.patient != patient || ser.code != code || ser.device != device {
				return fmt.Errorf("series %d redefined", id)
			}
			if unit != ser.unit {
				ser.unit, ser.defDirty = unit, true
				s.dirty[id] = struct{}{}
			}
			return nil
		}
		if s.obs[seriesName{patient, code, device}] != nil {
			return fmt.Errorf("series (%s, %s, %s) defined twice", patient, code, device)
		}
		s.addObsSeries(&series{id: id, patient: patient, code: code, device: device, unit: unit, defDirty: true})
	} else {
		if ws := s.wavByID[id]; ws != nil {
			if unit != ws.unit {
				ws.unit, ws.defDirty = unit, true
				s.dirty[id] = struct{}{}
			}
			return nil
		}
		if s.wav[seriesName{patient, code, device}] != nil {
			return fmt.Errorf("waveform series (%s, %s, %s) defined twice", patient, code, device)
		}
		s.addWaveSeries(&wseries{id: id, patient: patient, code: code, device: device, unit: unit, defDirty: true})
	}
	s.dirty[id] = struct{}{}
	return nil
}

func (r replayer) walSamples(id uint64, ts []int64, vs []float64) error {
	ser := r.s.obsByID[id]
	if ser == nil {
		return fmt.Errorf("samples for unknown series %d", id)
	}
	var dc dupCache
	for i := range ts {
		if _, err := r.s.insertObs(ser, ts[i], vs[i], &dc); err != nil {
			return err
		}
	}
	return nil
}

func (r replayer) walWave(id uint64, start, period int64, scale float64, n int, data []byte) error {
	ws := r.s.wavByID[id]
	if ws == nil {
		return fmt.Errorf("waveform for unknown series %d", id)
	}
	dup, err := r.s.waveExists(ws, start)
	if err != nil || dup {
		return err
	}
	r.s.insertWave(ws, &wseg{start: start, period: period, scale: scale, n: n, data: slices.Clone(data)})
	return nil
}

// Series definitions in Pebble: kind, patient, code, device, unit, uvarint maxDur.
func encodeDef(kind byte, patient, code, device, unit string, maxDur int64) []byte {
	b := []byte{kind}
	b = appendStr(b, patient)
	b = appendStr(b, code)
	b = appendStr(b, device)
	b = appendStr(b, unit)
	return binary.AppendUvarint(b, uint64(max(maxDur, 0)))
}

// loadCatalog reads the series definitions and the state needed to continue each series.
func (s *Store) loadCatalog() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'s'}, UpperBound: []byte{'t'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return fmt.Errorf("corrupt series key %x", k)
		}
		id := binary.BigEndian.Uint64(k[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		d := decoder{b: v}
		kind := d.byte()
		patient, code, device, unit := d.str(), d.str(), d.str(), d.str()
		maxDur := d.uvarint()
		if d.err != nil {
			return fmt.Errorf("corrupt series definition %d: %w", id, d.err)
		}
		switch kind {
		case kindObs:
			ser := &series{id: id, patient: patient, code: code, device: device, unit: unit, persisted: true}
			if err := s.loadHead(ser); err != nil {
				return fmt.Errorf("series %d: %w", id, err)
			}
			s.addObsSeries(ser)
		case kindWave:
			ws := &wseries{id: id, patient: patient, code: code, device: device, unit: unit, persisted: true, maxDur: int64(min(maxDur, math.MaxInt64/2))}
			if err := s.loadLastWave(ws); err != nil {
				return fmt.Errorf("waveform series %d: %w", id, err)
			}
			s.addWaveSeries(ws)
		default:
			return fmt.Errorf("series %d has unknown kind %d", id, kind)
		}
	}
	return it.Error()
}

// loadHead finds the series' last in-order chunk: its last sample gives lastT (Latest), and an
// unsealed chunk becomes the head again.
func (s *Store) loadHead(ser *series) error {
	lo, hi := chunkBounds(ser.id, math.MinInt64, math.MaxInt64)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Last(); it.Valid(); it.Prev() {
		_, start, kind, ok := parseChunkKey(it.Key())
		if !ok || kind != chunkMain {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		smp, sealed, err := decodeChunk(nil, v)
		if err != nil {
			return fmt.Errorf("chunk %x: %w", it.Key(), err)
		}
		last := smp[len(smp)-1]
		ser.has, ser.lastT, ser.lastV = true, last.t, last.v
		if !sealed {
			ser.head = newChunkEnc()
			ser.headStart = start
			for _, x := range smp {
				ser.head.append(x.t, x.v)
			}
		}
		return nil
	}
	return it.Error()
}

func (s *Store) loadLastWave(ws *wseries) error {
	lo, hi := waveKey(ws.id, math.MinInt64), waveKey(ws.id+1, math.MinInt64)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	if it.Last() {
		_, start, ok := parseWaveKey(it.Key())
		if ok {
			ws.has, ws.lastStart = true, start
		}
	}
	return it.Error()
}
