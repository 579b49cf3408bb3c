package wfdb

import (
	"fmt"
)

// Decode decodes a signal file holding nsig interleaved signals of one format (212 or 16,
// one sample per signal per frame) into one slice of digital samples per signal. A trailing
// partial frame is dropped, as the WFDB library does.
func Decode(data []byte, format, nsig int) ([][]int32, error) {
	if nsig <= 0 || nsig > maxSignals {
		return nil, fmt.Errorf("%w: bad number of signals %d", ErrFormat, nsig)
	}
	var total int
	switch format {
	case 212:
		// Two 12-bit samples per three bytes; an odd final sample takes two bytes.
		total = len(data) / 3 * 2
		if len(data)%3 == 2 {
			total++
		}
	case 16:
		total = len(data) / 2
	default:
		return nil, fmt.Errorf("%w: signal format %d is not supported (212 and 16 are)", ErrFormat, format)
	}
	frames := total / nsig
	out := make([][]int32, nsig)
	for i := range out {
		out[i] = make([]int32, frames)
	}
	n := frames * nsig
	switch format {
	case 212:
		for k := 0; k < n; k++ {
			b := data[k/2*3:]
			var v int32
			if k%2 == 0 {
				v = int32(b[0]) | int32(b[1]&0x0f)<<8
			} else {
				v = int32(b[2]) | int32(b[1]&0xf0)<<4
			}
			if v >= 2048 {
				v -= 4096
			}
			out[k%nsig][k/nsig] = v
		}
	case 16:
		for k := 0; k < n; k++ {
			out[k%nsig][k/nsig] = int32(int16(uint16(data[2*k]) | uint16(data[2*k+1])<<8))
		}
	}
	return out, nil
}
