package embedded

import (
	"encoding/binary"
	"errors"
)

var errCorruptWave = errors.New("corrupt waveform samples")

// encodeWave appends the samples as zigzag varints of the first difference
// (sample[i] - sample[i-1], sample[-1] = 0). ECG and pleth move little between
// neighbouring samples, so most differences fit in one byte.
func encodeWave(dst []byte, s []int32) []byte {
	var prev int64
	for _, x := range s {
		d := int64(x) - prev
		prev = int64(x)
		u := uint64(d<<1) ^ uint64(d>>63)
		for u >= 0x80 {
			dst = append(dst, byte(u)|0x80)
			u >>= 7
		}
		dst = append(dst, byte(u))
	}
	return dst
}

// decodeWave decodes exactly n samples from b and appends them to dst.
func decodeWave(dst []int32, b []byte, n int) ([]int32, error) {
	if n < 0 || n > len(b) {
		return dst, errCorruptWave
	}
	var prev int64
	p := 0
	for i := 0; i < n; i++ {
		u, k := binary.Uvarint(b[p:])
		if k <= 0 {
			return dst, errCorruptWave
		}
		p += k
		d := int64(u>>1) ^ -int64(u&1)
		prev += d
		if prev < -1<<31 || prev > 1<<31-1 {
			return dst, errCorruptWave
		}
		dst = append(dst, int32(prev))
	}
	if p != len(b) {
		return dst, errCorruptWave
	}
	return dst, nil
}
