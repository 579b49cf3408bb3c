package wfdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("wfdb: malformed input")

// DefaultGain is the gain assumed when a header gives none or gives 0 (WFDB convention).
const DefaultGain = 200

// Header is a parsed single-segment record header.
type Header struct {
	Record     string
	Frequency  float64 // samples per second per signal
	NumSamples int64   // samples per signal; 0 when unknown
	BaseTime   string  // as written, may be empty
	BaseDate   string  // as written, may be empty
	Signals    []Signal
	Comments   []string // text of '#' lines, without the '#'
}

// Signal describes one signal of a record.
type Signal struct {
	File            string
	Format          int
	SamplesPerFrame int
	Skew            int
	ByteOffset      int64
	Gain            float64 // ADC units per physical unit
	Baseline        int     // ADC value that corresponds to 0 physical units
	Units           string
	ADCRes          int
	ADCZero         int
	InitValue       int
	Checksum        int
	BlockSize       int
	Description     string
}

// Physical converts a digital sample of the signal to physical units.
func (s Signal) Physical(d int32) float64 {
	return float64(int64(d)-int64(s.Baseline)) / s.Gain
}

// maxSignals bounds what a header may declare so a hostile header cannot make us allocate much.
const maxSignals = 4096

// ParseHeader reads a record header. Multi-segment headers (record/segments) are refused.
func ParseHeader(r io.Reader) (*Header, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	h := &Header{}
	nsig := -1
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(text)
		if strings.HasPrefix(trimmed, "#") {
			h.Comments = append(h.Comments, strings.TrimPrefix(trimmed, "#"))
			continue
		}
		if trimmed == "" {
			continue
		}
		f := strings.Fields(trimmed)
		if nsig < 0 {
			n, err := parseRecordLine(h, f)
			if err != nil {
				return nil, fmt.Errorf("%w: header line %d: %v", ErrFormat, line, err)
			}
			nsig = n
			continue
		}
		if len(h.Signals) >= nsig {
			// WFDB allows info strings after the signal lines only as comments; tolerate nothing else.
			return nil, fmt.Errorf("%w: header line %d: more signal lines than the %d declared", ErrFormat, line, nsig)
		}
		s, err := parseSignalLine(f)
		if err != nil {
			return nil, fmt.Errorf("%w: header line %d: %v", ErrFormat, line, err)
		}
		h.Signals = append(h.Signals, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("wfdb: reading header: %w", err)
	}
	if nsig < 0 {
		return nil, fmt.Errorf("%w: header has no record line", ErrFormat)
	}
	if len(h.Signals) != nsig {
		return nil, fmt.Errorf("%w: header declares %d signals but describes %d", ErrFormat, nsig, len(h.Signals))
	}
	return h, nil
}

func parseRecordLine(h *Header, f []string) (int, error) {
	name := f[0]
	if strings.Contains(name, "/") {
		return 0, fmt.Errorf("multi-segment record %q is not supported", name)
	}
	h.Record = name
	h.Frequency = 250 // WFDB default when absent
	if len(f) < 2 {
		return 0, nil
	}
	nsig, err := strconv.Atoi(f[1])
	if err != nil || nsig < 0 || nsig > maxSignals {
		return 0, fmt.Errorf("bad number of signals %q", f[1])
	}
	if len(f) > 2 {
		// The frequency may carry "/counter(base)"; only the sampling frequency matters here.
		fs := f[2]
		if i := strings.IndexByte(fs, '/'); i >= 0 {
			fs = fs[:i]
		}
		v, err := strconv.ParseFloat(fs, 64)
		if err != nil || !(v > 0) || v > 1e9 {
			return 0, fmt.Errorf("bad sampling frequency %q", f[2])
		}
		h.Frequency = v
	}
	if len(f) > 3 {
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad number of samples %q", f[3])
		}
		h.NumSamples = n
	}
	if len(f) > 4 {
		h.BaseTime = f[4]
	}
	if len(f) > 5 {
		h.BaseDate = f[5]
	}
	return nsig, nil
}

func parseSignalLine(f []string) (Signal, error) {
	var s Signal
	if len(f) < 2 {
		return s, errors.New("signal line needs a file name and a format")
	}
	s.File = f[0]
	// Format field: format[xsamples][:skew][+offset]
	ff := f[1]
	if i := strings.IndexByte(ff, '+'); i >= 0 {
		off, err := strconv.ParseInt(ff[i+1:], 10, 64)
		if err != nil || off < 0 {
			return s, fmt.Errorf("bad byte offset in %q", f[1])
		}
		s.ByteOffset = off
		ff = ff[:i]
	}
	if i := strings.IndexByte(ff, ':'); i >= 0 {
		sk, err := strconv.Atoi(ff[i+1:])
		if err != nil || sk < 0 {
			return s, fmt.Errorf("bad skew in %q", f[1])
		}
		s.Skew = sk
		ff = ff[:i]
	}
	s.SamplesPerFrame = 1
	if i := strings.IndexByte(ff, 'x'); i >= 0 {
		spf, err := strconv.Atoi(ff[i+1:])
		if err != nil || spf < 1 || spf > 1024 {
			return s, fmt.Errorf("bad samples per frame in %q", f[1])
		}
		s.SamplesPerFrame = spf
		ff = ff[:i]
	}
	format, err := strconv.Atoi(ff)
	if err != nil {
		return s, fmt.Errorf("bad format %q", f[1])
	}
	s.Format = format
	s.Gain = DefaultGain
	s.ADCRes = 12
	if format == 16 {
		s.ADCRes = 16
	}
	if len(f) > 2 {
		// Gain field: gain[(baseline)][/units]
		g := f[2]
		if i := strings.IndexByte(g, '/'); i >= 0 {
			s.Units = g[i+1:]
			g = g[:i]
		}
		baseSet := false
		if i := strings.IndexByte(g, '('); i >= 0 {
			j := strings.IndexByte(g, ')')
			if j < i {
				return s, fmt.Errorf("bad baseline in %q", f[2])
			}
			b, err := strconv.Atoi(g[i+1 : j])
			if err != nil {
				return s, fmt.Errorf("bad baseline in %q", f[2])
			}
			s.Baseline = b
			baseSet = true
			g = g[:i]
		}
		v, err := strconv.ParseFloat(g, 64)
		if err != nil || v < 0 || v != v {
			return s, fmt.Errorf("bad gain %q", f[2])
		}
		if v > 0 {
			s.Gain = v
		}
		if !baseSet {
			s.Baseline = -1 << 31 // resolved to ADC zero below
		}
	} else {
		s.Baseline = -1 << 31
	}
	ints := []*int{&s.ADCRes, &s.ADCZero, &s.InitValue, &s.Checksum, &s.BlockSize}
	for k, p := range ints {
		if len(f) <= 3+k {
			break
		}
		v, err := strconv.Atoi(f[3+k])
		if err != nil {
			return s, fmt.Errorf("bad integer field %d %q", 4+k, f[3+k])
		}
		*p = v
	}
	if s.ADCRes == 0 {
		s.ADCRes = 12
		if format == 16 {
			s.ADCRes = 16
		}
	}
	if len(f) > 8 {
		s.Description = strings.Join(f[8:], " ")
	}
	if s.Baseline == -1<<31 {
		s.Baseline = s.ADCZero
	}
	if s.Units == "" {
		s.Units = "mV"
	}
	return s, nil
}
