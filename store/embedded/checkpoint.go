package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
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
	if s.walErr != nil {
		s.mu.Unlock()
		return fmt.Errorf("wal failed earlier: %w", s.walErr)
	}
	if len(s.dirty) == 0 && len(s.pend) == recHeader && s.walBytes == 0 {
		s.mu.Unlock()
		return nil
	}
	// Snapshot, under the lock, everything the WAL holds so far.
	var obs []ckptSeries
	var waves []ckptWave
	for id := range s.dirty {
		if ser := s.obsByID[id]; ser != nil {
			ser.inDirty = false
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
	// Hand what is pending now to the committer, to be written and followed by a new
	// segment: the snapshot covers exactly the segments before that one. Appends from now
	// on gather in a fresh pend that the committer writes after it.
	s.rotFrame, s.rotGroup = s.pend, s.cur
	s.pend, s.cur = s.newPend(), newGroup()
	g := s.waitGroup()
	s.mu.Unlock()
	<-g.done
	if g.err != nil {
		s.restore(obs, waves)
		return g.err
	}
	newSeq := g.seq

	if err := s.persist(obs, waves, nextID, newSeq); err != nil {
		s.restore(obs, waves)
		return err
	}
	s.mu.Lock()
	for _, c := range obs {
		c.ser.sealedFl, c.ser.lateFl = nil, nil
		c.ser.persisted = true
	}
	for _, c := range waves {
		c.ws.pendingFl = nil
		c.ws.persisted = true
	}
	s.mu.Unlock()
	return removeSegmentsBefore(filepath.Join(s.dir, "wal"), newSeq)
}

// kv is one key and value of a checkpoint.
type kv struct{ k, v []byte }

// persist writes the snapshot and the new WAL start as one sstable that it ingests into
// Pebble: atomic (a crash leaves either the old checkpoint and its WAL or the new one),
// durable when Ingest returns, and without a second copy of the data in Pebble's own WAL.
func (s *Store) persist(obs []ckptSeries, waves []ckptWave, nextID, walStart uint64) error {
	var kvs []kv
	for _, c := range obs {
		id := c.ser.id
		if c.def != nil {
			kvs = append(kvs, kv{seriesKey(id), c.def})
		}
		for _, m := range c.sealed {
			kvs = append(kvs, kv{chunkKey(id, m.start, chunkMain), m.data})
		}
		if c.head != nil {
			kvs = append(kvs, kv{chunkKey(id, c.headStart, chunkMain), c.head})
		}
		if len(c.late) > 0 {
			var err error
			if kvs, err = s.persistLate(kvs, id, c.late); err != nil {
				return fmt.Errorf("series %d late samples: %w", id, err)
			}
		}
	}
	for _, c := range waves {
		id := c.ws.id
		if c.def != nil {
			kvs = append(kvs, kv{seriesKey(id), c.def})
		}
		for _, g := range c.segs {
			v := make([]byte, 0, len(g.data)+24)
			v = binary.AppendUvarint(v, uint64(g.period))
			v = appendFloat(v, g.scale)
			v = binary.AppendUvarint(v, uint64(g.n))
			v = append(v, g.data...)
			kvs = append(kvs, kv{waveKey(id, g.start), v})
		}
	}
	kvs = append(kvs, kv{keyNextID, u64(nextID)}, kv{keyWALStart, u64(walStart)})
	// An sstable needs its keys in order, each once; a later entry for a key wins (a sealed
	// chunk and the head chunk never share a start, but be safe).
	slices.SortStableFunc(kvs, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	for i := len(kvs) - 1; i > 0; i-- {
		if bytes.Equal(kvs[i].k, kvs[i-1].k) {
			kvs = slices.Delete(kvs, i-1, i)
		}
	}
	name := filepath.Join(s.dir, "checkpoint.sst")
	f, err := vfs.Default.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.popts.MakeWriterOptions(0, s.db.TableFormat()))
	for _, e := range kvs {
		if err := w.Set(e.k, e.v); err != nil {
			_ = w.Close()
			_ = os.Remove(name)
			return err
		}
	}
	if err := w.Close(); err != nil { // syncs the file
		_ = os.Remove(name)
		return err
	}
	if err := s.db.Ingest(context.Background(), []string{name}); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("ingest checkpoint: %w", err)
	}
	return nil
}

// persistLate merges late samples into the series' late chunk of each window.
func (s *Store) persistLate(kvs []kv, id uint64, late []sample) ([]kv, error) {
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
				return kvs, fmt.Errorf("chunk %x: %w", key, derr)
			}
			merged = append(merged, old...)
			slices.SortStableFunc(merged, func(a, b sample) int { return cmpInt(a.t, b.t) })
			merged = slices.CompactFunc(merged, func(a, b sample) bool { return a.t == b.t })
		case !errors.Is(err, pebble.ErrNotFound):
			return kvs, err
		}
		c := newChunkEnc()
		for _, x := range merged {
			c.append(x.t, x.v)
		}
		kvs = append(kvs, kv{key, c.bytes(false)})
		i = j
	}
	return kvs, nil
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
