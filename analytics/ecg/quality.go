package ecg

import "math"

// quality judges each second of signal: lead-off (flat), saturation (clipped at a rail) and
// noise (QRS-band energy spread over the whole second instead of concentrated in complexes).
type quality struct {
	cfg      Config
	blockLen int
	fill     int
	lo, hi   float64
	nLo, nHi int
	energy   float64
	start    int64
	open     [Noise + 1]bool
	onset    [Noise + 1]int64
	state    [Noise + 1]bool // condition of the last complete block
}

func newQuality(cfg Config) quality {
	return quality{cfg: cfg, blockLen: max(1, int(math.Round(cfg.SampleRate)))}
}

// bad reports whether the last complete second was unusable.
func (q *quality) bad() bool { return q.state[LeadOff] || q.state[Saturation] || q.state[Noise] }

func (q *quality) add(x []float64, d *Detector, n int64, o *Output) {
	for i, v := range x {
		if q.fill == 0 {
			q.lo, q.hi, q.nLo, q.nHi, q.energy, q.start = v, v, 0, 0, 0, n+int64(i)
		}
		switch {
		case v < q.lo:
			q.lo, q.nLo = v, 1
		case v == q.lo:
			q.nLo++
		}
		switch {
		case v > q.hi:
			q.hi, q.nHi = v, 1
		case v == q.hi:
			q.nHi++
		}
		q.fill++
	}
	// Feature energy of the detector's newest samples.
	for k := int64(len(x)); k > 0; k-- {
		q.energy += d.mwi.at(d.n - k)
	}
	if q.fill < q.blockLen {
		return
	}
	p2p := q.hi - q.lo
	var cond [Noise + 1]bool
	cond[LeadOff] = p2p < q.cfg.FlatMV
	clip := float64(q.nLo+q.nHi) / float64(q.fill)
	if !cond[LeadOff] && q.nLo+q.nHi > 2 {
		// Clipping shows as many samples sitting on the block's exact extremes.
		cond[Saturation] = clip >= q.cfg.ClipShare
	}
	if !cond[LeadOff] && !cond[Saturation] && d.spk > 0 {
		cond[Noise] = q.energy/float64(q.fill) > q.cfg.NoiseRatio*d.spk
	}
	for k := LeadOff; k <= Noise; k++ {
		switch {
		case cond[k] && !q.open[k]:
			q.open[k], q.onset[k] = true, q.start
			o.Started = append(o.Started, Episode{k, q.start, -1})
		case !cond[k] && q.open[k]:
			q.open[k] = false
			o.Episodes = append(o.Episodes, Episode{k, q.onset[k], q.start})
		}
	}
	q.state = cond
	q.fill = 0
}

func (q *quality) flush(n int64, o *Output) {
	for k := LeadOff; k <= Noise; k++ {
		if q.open[k] {
			q.open[k] = false
			o.Episodes = append(o.Episodes, Episode{k, q.onset[k], n})
		}
	}
}
