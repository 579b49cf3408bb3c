package wfdb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Record is a header with its decoded digital samples, one slice per signal.
type Record struct {
	Header
	Samples [][]int32
}

// Physical returns signal i in physical units.
func (r *Record) Physical(i int) []float64 {
	s := r.Signals[i]
	out := make([]float64, len(r.Samples[i]))
	for k, d := range r.Samples[i] {
		out[k] = s.Physical(d)
	}
	return out
}

// ReadRecord reads dir/name.hea and the signal files it names (formats 212 and 16, one sample
// per frame). Signals sharing a file must share its format, as WFDB requires.
func ReadRecord(dir, name string) (*Record, error) {
	hb, err := os.ReadFile(filepath.Join(dir, name+".hea"))
	if err != nil {
		return nil, fmt.Errorf("wfdb: record %s: %w", name, err)
	}
	h, err := ParseHeader(bytes.NewReader(hb))
	if err != nil {
		return nil, fmt.Errorf("wfdb: record %s: %w", name, err)
	}
	rec := &Record{Header: *h, Samples: make([][]int32, len(h.Signals))}
	for i := 0; i < len(h.Signals); {
		s := h.Signals[i]
		j := i + 1
		for j < len(h.Signals) && h.Signals[j].File == s.File {
			if h.Signals[j].Format != s.Format {
				return nil, fmt.Errorf("wfdb: record %s: %w: signals of %s mix formats", name, ErrFormat, s.File)
			}
			j++
		}
		for k := i; k < j; k++ {
			if h.Signals[k].SamplesPerFrame != 1 || h.Signals[k].Skew != 0 {
				return nil, fmt.Errorf("wfdb: record %s: %w: multi-frequency or skewed signals are not supported", name, ErrFormat)
			}
		}
		if filepath.Base(s.File) != s.File {
			return nil, fmt.Errorf("wfdb: record %s: %w: signal file %q must be in the record's directory", name, ErrFormat, s.File)
		}
		data, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			return nil, fmt.Errorf("wfdb: record %s: %w", name, err)
		}
		if s.ByteOffset > int64(len(data)) {
			return nil, fmt.Errorf("wfdb: record %s: %w: byte offset %d past the end of %s", name, ErrFormat, s.ByteOffset, s.File)
		}
		sig, err := Decode(data[s.ByteOffset:], s.Format, j-i)
		if err != nil {
			return nil, fmt.Errorf("wfdb: record %s: %s: %w", name, s.File, err)
		}
		if h.NumSamples > 0 {
			for k := range sig {
				if int64(len(sig[k])) > h.NumSamples {
					sig[k] = sig[k][:h.NumSamples]
				}
			}
		}
		copy(rec.Samples[i:j], sig)
		i = j
	}
	return rec, nil
}

// ReadAnnotations reads dir/name.ext (for example "atr").
func ReadAnnotations(dir, name, ext string) ([]Annotation, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+"."+ext))
	if err != nil {
		return nil, fmt.Errorf("wfdb: annotations %s.%s: %w", name, ext, err)
	}
	anns, err := ParseAnnotations(data)
	if err != nil {
		return nil, fmt.Errorf("wfdb: annotations %s.%s: %w", name, ext, err)
	}
	return anns, nil
}
