package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Chunk encoding (after Pelkonen et al., "Gorilla", VLDB 2015): timestamps in Unix
// milliseconds as delta-of-delta, values as XOR with the previous value.
//
// Persisted layout of a chunk:
//
//	byte 0      format (chunkFormatV1)
//	byte 1      flags (chunkSealed: no sample will be appended any more)
//	uvarint     number of samples n (n >= 1)
//	varint      time of the first sample
//	8 bytes     value of the first sample (IEEE 754 bits, big endian)
//	bit stream  samples 2..n
//
// Time of sample i>0: dod = (t[i]-t[i-1]) - (t[i-1]-t[i-2]) with t[-1] = t[0]:
//
//	'0'                     dod == 0
//	'10'   + 7 bits         -63 <= dod <= 64
//	'110'  + 12 bits        -2047 <= dod <= 2048
//	'1110' + 20 bits        -524287 <= dod <= 524288
//	'1111' + 64 bits        anything else
//
// Value of sample i>0: x = bits(v[i]) XOR bits(v[i-1]):
//
//	'0'                                   x == 0
//	'10' + meaningful bits                x fits the previous window of leading/trailing zeros
//	'11' + 5 bits leading + 6 bits width (0 means 64) + meaningful bits
const (
	chunkFormatV1 = 1
	chunkSealed   = 1 << 0
)

var errCorruptChunk = errors.New("corrupt chunk")

// bitWriter appends bits most-significant first.
type bitWriter struct {
	buf  []byte
	acc  uint64 // pending bits, right-aligned
	nacc uint   // number of pending bits (< 64)
}

func (w *bitWriter) writeBits(v uint64, n uint) {
	if n == 0 {
		return
	}
	if n < 64 {
		v &= 1<<n - 1
	}
	free := 64 - w.nacc
	if n < free {
		w.acc = w.acc<<n | v
		w.nacc += n
		return
	}
	// Fill the accumulator, flush it and keep the rest.
	rest := n - free
	w.acc = w.acc<<free | v>>rest
	w.buf = binary.BigEndian.AppendUint64(w.buf, w.acc)
	if rest < 64 {
		w.acc = v & (1<<rest - 1)
	} else {
		w.acc = 0
	}
	w.nacc = rest
}

// appendTo appends the stream, the last byte padded with zero bits, to dst.
func (w *bitWriter) appendTo(dst []byte) []byte {
	dst = append(dst, w.buf...)
	if w.nacc > 0 {
		v := w.acc << (64 - w.nacc)
		nb := (w.nacc + 7) / 8
		var tmp [8]byte
		binary.BigEndian.PutUint64(tmp[:], v)
		dst = append(dst, tmp[:nb]...)
	}
	return dst
}

func (w *bitWriter) size() int { return len(w.buf) + int(w.nacc+7)/8 }

// bitReader reads bits most-significant first.
type bitReader struct {
	b     []byte
	pos   uint
	nbits uint
}

func newBitReader(b []byte) bitReader { return bitReader{b: b, nbits: uint(len(b)) * 8} }

func (r *bitReader) readBit() (uint64, bool) {
	if r.pos >= r.nbits {
		return 0, false
	}
	bit := uint64(r.b[r.pos>>3]>>(7-r.pos&7)) & 1
	r.pos++
	return bit, true
}

func (r *bitReader) readBits(n uint) (uint64, bool) {
	if n == 0 {
		return 0, true
	}
	if n > 56 {
		hi, ok := r.readBits(n - 32)
		if !ok {
			return 0, false
		}
		lo, ok := r.readBits(32)
		return hi<<32 | lo, ok
	}
	if r.pos+n > r.nbits {
		return 0, false
	}
	idx := r.pos >> 3
	off := r.pos & 7
	var v uint64
	if int(idx)+8 <= len(r.b) {
		v = binary.BigEndian.Uint64(r.b[idx:])
	} else {
		for i := uint(0); i < 8; i++ {
			v <<= 8
			if int(idx+i) < len(r.b) {
				v |= uint64(r.b[idx+i])
			}
		}
	}
	r.pos += n
	return (v << off) >> (64 - n), true
}

// chunkEnc builds one chunk in memory.
type chunkEnc struct {
	n        int
	t0       int64
	v0       float64
	tPrev    int64
	tDelta   int64
	vPrev    uint64
	leading  uint8 // 0xff: no window yet
	trailing uint8
	bw       bitWriter
}

func newChunkEnc() *chunkEnc { return &chunkEnc{leading: 0xff} }

func (c *chunkEnc) append(t int64, v float64) {
	vb := math.Float64bits(v)
	if c.n == 0 {
		c.t0, c.v0, c.tPrev, c.vPrev = t, v, t, vb
		c.n = 1
		return
	}
	delta := t - c.tPrev
	dod := delta - c.tDelta
	w := &c.bw
	switch {
	case dod == 0:
		w.writeBits(0, 1)
	case dod >= -63 && dod <= 64:
		w.writeBits(0b10, 2)
		w.writeBits(uint64(dod), 7)
	case dod >= -2047 && dod <= 2048:
		w.writeBits(0b110, 3)
		w.writeBits(uint64(dod), 12)
	case dod >= -524287 && dod <= 524288:
		w.writeBits(0b1110, 4)
		w.writeBits(uint64(dod), 20)
	default:
		w.writeBits(0b1111, 4)
		w.writeBits(uint64(dod), 64)
	}
	c.tDelta, c.tPrev = delta, t

	x := vb ^ c.vPrev
	c.vPrev = vb
	if x == 0 {
		w.writeBits(0, 1)
	} else {
		lead := uint8(bits.LeadingZeros64(x))
		trail := uint8(bits.TrailingZeros64(x))
		if lead > 31 {
			lead = 31
		}
		if c.leading != 0xff && lead >= c.leading && trail >= c.trailing {
			w.writeBits(0b10, 2)
			w.writeBits(x>>c.trailing, uint(64-c.leading-c.trailing))
		} else {
			c.leading, c.trailing = lead, trail
			sig := 64 - lead - trail
			w.writeBits(0b11, 2)
			w.writeBits(uint64(lead), 5)
			w.writeBits(uint64(sig), 6) // 64 wraps to 0
			w.writeBits(x>>trail, uint(sig))
		}
	}
	c.n++
}

// bytes returns a fresh encoded copy of the chunk.
func (c *chunkEnc) bytes(sealed bool) []byte {
	out := make([]byte, 0, 2+binary.MaxVarintLen64*2+8+c.bw.size())
	flags := byte(0)
	if sealed {
		flags |= chunkSealed
	}
	out = append(out, chunkFormatV1, flags)
	out = binary.AppendUvarint(out, uint64(c.n))
	out = binary.AppendVarint(out, c.t0)
	out = binary.BigEndian.AppendUint64(out, math.Float64bits(c.v0))
	return c.bw.appendTo(out)
}

// sample is one reading of a series.
type sample struct {
	t int64
	v float64
}

// chunkHeader reads a chunk's header.
func chunkHeader(b []byte) (n int, sealed bool, t0 int64, v0 float64, body []byte, err error) {
	if len(b) < 2 || b[0] != chunkFormatV1 {
		return 0, false, 0, 0, nil, fmt.Errorf("%w: bad header", errCorruptChunk)
	}
	sealed = b[1]&chunkSealed != 0
	p := 2
	un, k := binary.Uvarint(b[p:])
	if k <= 0 || un == 0 || un > 1<<24 {
		return 0, false, 0, 0, nil, fmt.Errorf("%w: bad sample count", errCorruptChunk)
	}
	p += k
	t0, k = binary.Varint(b[p:])
	if k <= 0 {
		return 0, false, 0, 0, nil, fmt.Errorf("%w: bad first time", errCorruptChunk)
	}
	p += k
	if len(b)-p < 8 {
		return 0, false, 0, 0, nil, fmt.Errorf("%w: short first value", errCorruptChunk)
	}
	v0 = math.Float64frombits(binary.BigEndian.Uint64(b[p:]))
	p += 8
	// Every further sample takes at least 2 bits.
	if uint64(len(b)-p)*4 < un-1 {
		return 0, false, 0, 0, nil, fmt.Errorf("%w: sample count exceeds data", errCorruptChunk)
	}
	return int(un), sealed, t0, v0, b[p:], nil
}

// decodeChunk appends the chunk's samples to dst.
func decodeChunk(dst []sample, b []byte) ([]sample, bool, error) {
	return decodeChunkRange(dst, b, math.MinInt64, math.MaxInt64)
}

// decodeChunkRange appends the chunk's samples with from <= t < to to dst. Chunks hold
// samples in time order, so decoding stops at the first sample at or after to.
func decodeChunkRange(dst []sample, b []byte, from, to int64) ([]sample, bool, error) {
	n, sealed, t, v, body, err := chunkHeader(b)
	if err != nil {
		return dst, false, err
	}
	if t >= to {
		return dst, sealed, nil
	}
	if t >= from {
		dst = append(dst, sample{t, v})
	}
	r := newBitReader(body)
	var delta int64
	vb := math.Float64bits(v)
	var leading, trailing uint8
	haveWindow := false
	for i := 1; i < n; i++ {
		// timestamp
		var dod int64
		bit, ok := r.readBit()
		if !ok {
			return dst, false, errCorruptChunk
		}
		if bit == 1 {
			var nb uint
			var ctl int
			for ctl = 1; ctl < 4; ctl++ {
				bit, ok = r.readBit()
				if !ok {
					return dst, false, errCorruptChunk
				}
				if bit == 0 {
					break
				}
			}
			switch ctl {
			case 1:
				nb = 7
			case 2:
				nb = 12
			case 3:
				nb = 20
			default:
				nb = 64
			}
			u, ok := r.readBits(nb)
			if !ok {
				return dst, false, errCorruptChunk
			}
			if nb < 64 && u > 1<<(nb-1) { // sign extend; the positive range includes 2^(nb-1)
				dod = int64(u) - int64(1)<<nb
			} else {
				dod = int64(u)
			}
		}
		delta += dod
		t += delta
		// value
		bit, ok = r.readBit()
		if !ok {
			return dst, false, errCorruptChunk
		}
		if bit == 1 {
			bit, ok = r.readBit()
			if !ok {
				return dst, false, errCorruptChunk
			}
			if bit == 1 {
				l, ok1 := r.readBits(5)
				s, ok2 := r.readBits(6)
				if !ok1 || !ok2 {
					return dst, false, errCorruptChunk
				}
				if s == 0 {
					s = 64
				}
				if l+s > 64 {
					return dst, false, fmt.Errorf("%w: bad xor window", errCorruptChunk)
				}
				leading, trailing = uint8(l), uint8(64-l-s)
				haveWindow = true
			} else if !haveWindow {
				return dst, false, fmt.Errorf("%w: xor window before definition", errCorruptChunk)
			}
			sig := uint(64 - leading - trailing)
			x, ok := r.readBits(sig)
			if !ok {
				return dst, false, errCorruptChunk
			}
			vb ^= x << trailing
		}
		if t >= to {
			break
		}
		if t >= from {
			dst = append(dst, sample{t, math.Float64frombits(vb)})
		}
	}
	return dst, sealed, nil
}
