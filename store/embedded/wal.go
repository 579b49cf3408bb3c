package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The write-ahead log is a directory of segment files named by a 16-digit hexadecimal
// sequence number ("0000000000000001.wal"). A segment is a series of records:
//
//	uint32 little endian   length of the payload
//	uint32 little endian   CRC-32C (Castagnoli) of the payload
//	payload                entries (see below)
//
// One record is one group commit: the entries of every Append call that shared one write and
// one fsync. A crash can therefore tear only the last record of the last segment, which replay
// truncates. Any other damage is reported with the file and offset.
//
// Entries, each starting with a type byte:
//
//	entSeries   kind byte, uvarint id, patient, code, device, unit (uvarint length + bytes)
//	entSamples  uvarint id, uvarint n, n × (varint time delta, 8-byte value), the first delta from 0
//	entWave     uvarint id, varint start, uvarint period ns, 8-byte scale, uvarint n,
//	            uvarint len, len bytes of encodeWave samples
const (
	entSeries  = 1
	entSamples = 2
	entWave    = 3

	kindObs  = 0
	kindWave = 1

	recHeader = 8
	// maxRecord bounds one record so that a corrupt length cannot make replay allocate wildly.
	maxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func segName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

// listSegments returns the sequence numbers of the segments in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".wal") || len(name) != 20 {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// walWriter appends records to the current segment. Only the committer goroutine uses it.
//
// Appending to a file makes every fsync also commit the file's new size through the file
// system's journal (measured here: 1.4-7 ms per fsync). Overwriting space that is already
// allocated and written needs only the data flushed (fdatasync, about 1 ms). So after the
// first rotation, the next segment is prepared in the background as a zero-filled file of
// maxSize bytes, and a rotation renames it into place. Replay treats an all-zero tail as the
// clean end of a segment.
type walWriter struct {
	dir     string
	f       *os.File
	seq     uint64
	size    int64
	maxSize int64
	noSync  bool
	spare   chan string // a preallocated file ready to become the next segment
	busy    atomic.Bool // a preallocation is running
	closing atomic.Bool // no more preallocation
	wg      sync.WaitGroup
	warn    func(msg string, args ...any)
}

const preallocName = "prealloc.tmp"

func openWALWriter(dir string, seq uint64, maxSize int64, noSync bool, warn func(string, ...any)) (*walWriter, error) {
	w := &walWriter{dir: dir, maxSize: maxSize, noSync: noSync, spare: make(chan string, 1), warn: warn}
	_ = os.Remove(filepath.Join(dir, preallocName)) // left by a crash
	if err := w.create(seq); err != nil {
		return nil, err
	}
	return w, nil
}

// create starts segment seq: the preallocated spare if there is one, else an empty file.
func (w *walWriter) create(seq uint64) error {
	name := filepath.Join(w.dir, segName(seq))
	var f *os.File
	var err error
	select {
	case tmp := <-w.spare:
		if err = os.Rename(tmp, name); err == nil {
			f, err = os.OpenFile(name, os.O_WRONLY, 0)
		}
	default:
		f, err = os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	}
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.f, w.seq, w.size = f, seq, 0
	return nil
}

// prepare fills a spare segment in the background unless one is ready or being made.
func (w *walWriter) prepare() {
	if w.closing.Load() || len(w.spare) > 0 || !w.busy.CompareAndSwap(false, true) {
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.busy.Store(false)
		name := filepath.Join(w.dir, preallocName)
		if err := preallocate(name, w.maxSize); err != nil {
			_ = os.Remove(name)
			w.warn("embedded: preallocating a wal segment failed", "err", err)
			return
		}
		w.spare <- name
	}()
}

func preallocate(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; {
		k := min(int64(len(zero)), size-n)
		if _, err := f.Write(zero[:k]); err != nil {
			f.Close()
			return err
		}
		n += k
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// write frames payload (which starts with recHeader reserved bytes) as one record, writes
// it and makes it durable.
func (w *walWriter) write(frame []byte) error {
	if len(frame) <= recHeader {
		return nil
	}
	if w.size > 0 && w.size+int64(len(frame)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	frameRecord(frame)
	if _, err := w.f.Write(frame); err != nil {
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	if !w.noSync {
		if err := fdatasync(w.f); err != nil {
			return fmt.Errorf("fsync %s: %w", w.f.Name(), err)
		}
	}
	w.size += int64(len(frame))
	return nil
}

// frameRecord fills in the header of frame, whose payload follows recHeader reserved bytes.
func frameRecord(frame []byte) []byte {
	payload := frame[recHeader:]
	binary.LittleEndian.PutUint32(frame[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, crcTable))
	return frame
}

// rotate closes the current segment and starts the next one; it returns with the new
// segment's sequence number in w.seq.
func (w *walWriter) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close wal segment: %w", err)
	}
	if err := w.create(w.seq + 1); err != nil {
		return err
	}
	w.prepare()
	return nil
}

// close closes the segment, cutting off its unused preallocated space, and drops a spare
// made in advance.
func (w *walWriter) close() error {
	w.wg.Wait()
	select {
	case tmp := <-w.spare:
		_ = os.Remove(tmp)
	default:
	}
	if w.f == nil {
		return nil
	}
	err := w.f.Truncate(w.size)
	if err == nil && !w.noSync {
		err = w.f.Sync()
	}
	err = errors.Join(err, w.f.Close())
	w.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// errTorn reports a torn tail; readSegment returns the offset of the first bad byte with it.
var errTorn = errors.New("torn record")

// readRecords calls fn for each record payload in data. It returns the offset just after the
// last good record. Zero bytes after the last record are unused space. A bad record is errTorn
// when it can only be the remains of an interrupted write at the end of the log (nothing but
// zeros after it); otherwise it is an error naming the offset.
func readRecords(data []byte, fn func(off int, payload []byte) error) (int, error) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		if allZero(rest) {
			return off, nil // unused (preallocated or zero-filled) space: the end
		}
		if len(rest) < recHeader {
			return off, errTorn
		}
		n := int(binary.LittleEndian.Uint32(rest))
		sum := binary.LittleEndian.Uint32(rest[4:])
		if n == 0 || n > maxRecord {
			return off, fmt.Errorf("bad record length %d at offset %d", n, off)
		}
		if n > len(rest)-recHeader {
			return off, errTorn
		}
		payload := rest[recHeader : recHeader+n]
		if crc32.Checksum(payload, crcTable) != sum {
			if recHeader+n == len(rest) || allZero(rest[recHeader+n:]) {
				return off, errTorn
			}
			return off, fmt.Errorf("checksum mismatch in record at offset %d", off)
		}
		if err := fn(off, payload); err != nil {
			return off, fmt.Errorf("record at offset %d: %w", off, err)
		}
		off += recHeader + n
	}
	return off, nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// walEntryHandler receives decoded WAL entries during replay.
type walEntryHandler interface {
	walSeries(kind byte, id uint64, patient, code, device, unit string) error
	walSamples(id uint64, ts []int64, vs []float64) error
	walWave(id uint64, start, period int64, scale float64, n int, data []byte) error
}

// decodeEntries decodes one record payload. It never panics on corrupt input.
func decodeEntries(p []byte, h walEntryHandler) error {
	d := decoder{b: p}
	var ts []int64
	var vs []float64
	for d.more() {
		typ := d.byte()
		switch typ {
		case entSeries:
			kind := d.byte()
			id := d.uvarint()
			patient, code, device, unit := d.str(), d.str(), d.str(), d.str()
			if d.err != nil {
				return d.err
			}
			if kind != kindObs && kind != kindWave {
				return fmt.Errorf("bad series kind %d", kind)
			}
			if err := h.walSeries(kind, id, patient, code, device, unit); err != nil {
				return err
			}
		case entSamples:
			id := d.uvarint()
			n := d.uvarint()
			if d.err != nil {
				return d.err
			}
			if n == 0 || n > uint64(d.left()/9) {
				return fmt.Errorf("bad sample count %d", n)
			}
			ts, vs = ts[:0], vs[:0]
			var t int64
			for i := uint64(0); i < n; i++ {
				t += d.varint()
				v := d.float()
				ts = append(ts, t)
				vs = append(vs, v)
			}
			if d.err != nil {
				return d.err
			}
			if err := h.walSamples(id, ts, vs); err != nil {
				return err
			}
		case entWave:
			id := d.uvarint()
			start := d.varint()
			period := d.uvarint()
			scale := d.float()
			n := d.uvarint()
			data := d.bytes()
			if d.err != nil {
				return d.err
			}
			if period == 0 || period > math.MaxInt64 || n == 0 || n > uint64(len(data)) {
				return fmt.Errorf("bad waveform header")
			}
			if err := h.walWave(id, start, int64(period), scale, int(n), data); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown entry type %d", typ)
		}
	}
	return d.err
}

// decoder reads the WAL's primitive encodings, recording the first error.
type decoder struct {
	b   []byte
	p   int
	err error
}

var errShort = errors.New("entry truncated")

func (d *decoder) more() bool { return d.err == nil && d.p < len(d.b) }
func (d *decoder) left() int  { return len(d.b) - d.p }

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.p = len(d.b)
}

func (d *decoder) byte() byte {
	if d.err != nil || d.p >= len(d.b) {
		d.fail()
		return 0
	}
	c := d.b[d.p]
	d.p++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b[d.p:])
	if k <= 0 {
		d.fail()
		return 0
	}
	d.p += k
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b[d.p:])
	if k <= 0 {
		d.fail()
		return 0
	}
	d.p += k
	return v
}

func (d *decoder) float() float64 {
	if d.err != nil || d.left() < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.p:]))
	d.p += 8
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.left()) {
		d.fail()
		return nil
	}
	b := d.b[d.p : d.p+int(n)]
	d.p += int(n)
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

// Encoding helpers for entries.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendSeriesEntry(b []byte, kind byte, id uint64, patient, code, device, unit string) []byte {
	b = append(b, entSeries, kind)
	b = binary.AppendUvarint(b, id)
	b = appendStr(b, patient)
	b = appendStr(b, code)
	b = appendStr(b, device)
	return appendStr(b, unit)
}

func appendWaveEntry(b []byte, id uint64, start, period int64, scale float64, n int, data []byte) []byte {
	b = append(b, entWave)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendVarint(b, start)
	b = binary.AppendUvarint(b, uint64(period))
	b = appendFloat(b, scale)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// replayWAL reads the segments of dir with sequence numbers >= from, in order, and passes
// their entries to h. A torn tail of the last segment is truncated away. It returns the
// highest sequence number seen (0 if none).
func replayWAL(dir string, from uint64, h walEntryHandler, warn func(msg string, args ...any)) (uint64, error) {
	seqs, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	var last uint64
	for i, seq := range seqs {
		last = seq
		if seq < from {
			continue
		}
		name := filepath.Join(dir, segName(seq))
		data, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		good, err := readRecords(data, func(_ int, payload []byte) error { return decodeEntries(payload, h) })
		if errors.Is(err, errTorn) {
			if i != len(seqs)-1 {
				return 0, fmt.Errorf("wal segment %s: truncated record at offset %d in a segment that is not the last", name, good)
			}
			warn("embedded: truncating torn wal tail", "file", name, "offset", good, "dropped_bytes", len(data)-good)
			if err := os.Truncate(name, int64(good)); err != nil {
				return 0, fmt.Errorf("truncate torn wal tail: %w", err)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wal segment %s: %w", name, err)
		}
	}
	return last, nil
}

// removeSegmentsBefore deletes the segments with sequence numbers < seq.
func removeSegmentsBefore(dir string, seq uint64) error {
	seqs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, s := range seqs {
		if s >= seq {
			break
		}
		if err := os.Remove(filepath.Join(dir, segName(s))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
