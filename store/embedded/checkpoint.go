package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

type ckptSeries struct {
	ser       *series
	def       []byte
	head      []byte
	headStart int64
	sealed    []*memChunk
	late      []sample
}

type ckptWave struct {
	ws   *wseries
	def  []byte
	segs []*wseg
}

// Checkpoint writes everything appended so far to Pebble and deletes the WAL segments it
// covers. It runs by itself periodically and at Close; tests and benchmarks call it to
// measure the persistent footprint.
func (s *Store) Checkpoint() error {
	if !s.enter() {
		return fmt.Errorf("embedded: checkpoint: %w", errClosed)
	}
	defer s.leave()
	if err := s.checkpoint(); err != nil {
		return fmt.Errorf("embedded: checkpoint: %w", err)
	}
	return nil
}

func (s *Store) checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()

	s.mu.Lock()
	for s.syncing {
		s.cond.Wait()
	}
	if s.walErr != nil {
		s.mu.Unlock()
		return fmt.Errorf("wal failed earlier: %w", s.walErr)
	}
	if len(s.dirty) == 0 && len(s.pend) == recHeader && s.wal.size == 0 {
		s.mu.Unlock()
		return nil
	}
	// Snapshot, under the lock, everything the WAL holds so far.
	var obs []ckptSeries
	var waves []ckptWave
	for id := range s.dirty {
		if ser := s.obsByID[id]; ser != nil {
			c := ckptSeries{ser: ser}
			if ser.defDirty {
				c.def = encodeDef(kindObs, ser.patient, ser.code, ser.device, ser.unit, 0)
				ser.defDirty = false
			}
			if ser.headDirty && ser.head != nil {
				c.head, c.headStart = ser.head.bytes(false), ser.headStart
			}
			ser.headDirty = false
			ser.sealedFl, ser.sealed = ser.sealed, nil
			ser.lateFl, ser.late = ser.late, nil
			c.sealed, c.late = ser.sealedFl, ser.lateFl
			obs = append(obs, c)
		} else if ws := s.wavByID[id]; ws != nil {
			c := ckptWave{ws: ws}
			if ws.defDirty {
				c.def = encodeDef(kindWave, ws.patient, ws.code, ws.device, ws.unit, ws.maxDur)
				ws.defDirty = false
			}
			ws.pendingFl, ws.pending = ws.pending, nil
			c.segs = ws.pendingFl
			waves = append(waves, c)
		}
	}
	clear(s.dirty)
	nextID := s.nextID
	// Become the group-commit leader: write what is pending, then start a new segment, so
	// that the snapshot covers exactly the segments before it.
	s.syncing = true
	frame, target := s.pend, s.pendSeq
	s.pend = make([]byte, recHeader, 64<<10)
	s.mu.Unlock()

	err := s.wal.write(frame)
	if err == nil && s.wal.size > 0 {
		err = s.wal.rotate()
	}
	newSeq := s.wal.seq
	s.mu.Lock()
	s.syncing = false
	if err != nil {
		s.walErr = err
	} else {
		s.syncedSeq = target
		s.walBytes = 0
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		s.restore(obs, waves)
		return err
	}

	if err := s.persist(obs, waves, nextID, newSeq); err != nil {
		s.restore(obs, waves)
		return err
	}
	s.mu.Lock()
	for _, c := range obs {
		c.ser.sealedFl, c.ser.lateFl = nil, nil
		c.ser.persisted = true
		if len(c.late) > 0 {
			c.ser.lateChunks = true
		}
	}
	for _, c := range waves {
		c.ws.pendingFl = nil
		c.ws.persisted = true
	}
	s.mu.Unlock()
	return removeSegmentsBefore(filepath.Join(s.dir, "wal"), newSeq)
}

// persist writes the snapshot and the new WAL start in one synced Pebble batch, so a crash
// leaves either the old checkpoint (and its WAL) or the new one.
func (s *Store) persist(obs []ckptSeries, waves []ckptWave, nextID, walStart uint64) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, c := range obs {
		id := c.ser.id
		if c.def != nil {
			if err := b.Set(seriesKey(id), c.def, nil); err != nil {
				return err
			}
		}
		for _, m := range c.sealed {
			if err := b.Set(chunkKey(id, m.start, chunkMain), m.data, nil); err != nil {
				return err
			}
		}
		if c.head != nil {
			if err := b.Set(chunkKey(id, c.headStart, chunkMain), c.head, nil); err != nil {
				return err
			}
		}
		if len(c.late) > 0 {
			if err := s.persistLate(b, id, c.late); err != nil {
				return fmt.Errorf("series %d late samples: %w", id, err)
			}
		}
	}
	for _, c := range waves {
		id := c.ws.id
		if c.def != nil {
			if err := b.Set(seriesKey(id), c.def, nil); err != nil {
				return err
			}
		}
		for _, g := range c.segs {
			v := make([]byte, 0, len(g.data)+24)
			v = binary.AppendUvarint(v, uint64(g.period))
			v = appendFloat(v, g.scale)
			v = binary.AppendUvarint(v, uint64(g.n))
			v = append(v, g.data...)
			if err := b.Set(waveKey(id, g.start), v, nil); err != nil {
				return err
			}
		}
	}
	if err := b.Set(keyNextID, u64(nextID), nil); err != nil {
		return err
	}
	if err := b.Set(keyWALStart, u64(walStart), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// persistLate merges late samples into the series' late chunk of each window.
func (s *Store) persistLate(b *pebble.Batch, id uint64, late []sample) error {
	for i := 0; i < len(late); {
		w := windowOf(late[i].t)
		j := i
		for j < len(late) && windowOf(late[j].t) == w {
			j++
		}
		key := chunkKey(id, w, chunkLate)
		merged := slices.Clone(late[i:j])
		v, closer, err := s.db.Get(key)
		switch {
		case err == nil:
			old, _, derr := decodeChunk(nil, v)
			closer.Close()
			if derr != nil {
				return fmt.Errorf("chunk %x: %w", key, derr)
			}
			merged = append(merged, old...)
			slices.SortStableFunc(merged, func(a, b sample) int { return cmpInt(a.t, b.t) })
			merged = slices.CompactFunc(merged, func(a, b sample) bool { return a.t == b.t })
		case !errors.Is(err, pebble.ErrNotFound):
			return err
		}
		c := newChunkEnc()
		for _, x := range merged {
			c.append(x.t, x.v)
		}
		if err := b.Set(key, c.bytes(false), nil); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// restore puts a failed checkpoint's snapshot back so the next one retries it.
func (s *Store) restore(obs []ckptSeries, waves []ckptWave) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range obs {
		ser := c.ser
		ser.sealed = append(ser.sealedFl, ser.sealed...)
		ser.sealedFl = nil
		if len(ser.lateFl) > 0 {
			ser.late = append(ser.lateFl, ser.late...)
			slices.SortStableFunc(ser.late, func(a, b sample) int { return cmpInt(a.t, b.t) })
			ser.lateFl = nil
		}
		ser.headDirty = true
		if c.def != nil {
			ser.defDirty = true
		}
		s.dirty[ser.id] = struct{}{}
	}
	for _, c := range waves {
		ws := c.ws
		ws.pending = append(ws.pendingFl, ws.pending...)
		ws.pendingFl = nil
		if c.def != nil {
			ws.defDirty = true
		}
		s.dirty[ws.id] = struct{}{}
	}
}
