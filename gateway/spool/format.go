package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Keys:
//
//	'e' device 0x00 seq(8, big endian) -> header | payload   one entry
//	'c' device                          -> seq(8, big endian)  last assigned seq (max-merged)
//
// Device ids carry no NUL, so 'e' keys sort by device then seq.
const (
	prefixCounter = 'c'
	prefixEntry   = 'e'
)

// Value header: version(1) class(1) received unix ns(8) gseq(8).
const (
	headerLen     = 18
	formatVersion = 1
)

func entryKey(dst []byte, device string, seq uint64) []byte {
	dst = append(dst, prefixEntry)
	dst = append(dst, device...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func counterKey(device string) []byte {
	return append([]byte{prefixCounter}, device...)
}

func parseEntryKey(k []byte) (string, uint64, error) {
	i := bytes.IndexByte(k, 0)
	if len(k) < 1+1+8 || k[0] != prefixEntry || i != len(k)-9 {
		return "", 0, fmt.Errorf("bad entry key %q", k)
	}
	return string(k[1:i]), binary.BigEndian.Uint64(k[i+1:]), nil
}

type header struct {
	class    Class
	received int64
	gseq     uint64
}

func appendValue(dst []byte, itm *item, payload []byte) []byte {
	dst = append(dst, formatVersion, byte(itm.class))
	dst = binary.BigEndian.AppendUint64(dst, uint64(itm.received))
	dst = binary.BigEndian.AppendUint64(dst, itm.gseq)
	return append(dst, payload...)
}

func parseHeader(v []byte) (header, error) {
	if len(v) < headerLen {
		return header{}, fmt.Errorf("value of %d B shorter than header", len(v))
	}
	if v[0] != formatVersion {
		return header{}, fmt.Errorf("unknown format version %d", v[0])
	}
	h := header{class: Class(v[1]), received: int64(binary.BigEndian.Uint64(v[2:])), gseq: binary.BigEndian.Uint64(v[10:])}
	if !h.class.Valid() {
		return header{}, fmt.Errorf("bad class %d", v[1])
	}
	return h, nil
}

// maxMerger keeps the largest of the 8-byte big-endian operands, so counter updates from
// concurrent batches commute: whatever order Pebble applies them in, the counter never goes
// back and a seq handed to a device is never reused.
var maxMerger = &pebble.Merger{
	Name: "iomt.spool.max-uint64",
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		m := &maxValue{}
		return m, m.MergeNewer(value)
	},
}

type maxValue struct{ v uint64 }

func (m *maxValue) MergeNewer(value []byte) error {
	if len(value) != 8 {
		return errors.New("spool: counter operand is not 8 bytes")
	}
	m.v = max(m.v, binary.BigEndian.Uint64(value))
	return nil
}

func (m *maxValue) MergeOlder(value []byte) error { return m.MergeNewer(value) }

func (m *maxValue) Finish(bool) ([]byte, io.Closer, error) {
	return binary.BigEndian.AppendUint64(nil, m.v), nil, nil
}
