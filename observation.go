package iomt

import "time"

// Observation is one numeric reading of one code for one patient, in the catalog's canonical
// UCUM unit. A reading is identified by (Device, Code, Time).
type Observation struct {
	Patient string    `json:"patient"`
	Device  string    `json:"device"`
	Code    string    `json:"code"` // LOINC code from the codes catalog
	Time    time.Time `json:"time"` // UTC, millisecond precision
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"` // canonical UCUM unit of Code
}

// Waveform is a segment of evenly spaced samples (ECG lead, pleth). Sample i was taken at
// Start + i*Period and its value is Samples[i]*Scale in Unit.
type Waveform struct {
	Patient string        `json:"patient"`
	Device  string        `json:"device"`
	Code    string        `json:"code"`
	Start   time.Time     `json:"start"`
	Period  time.Duration `json:"period"`
	Scale   float64       `json:"scale"`
	Unit    string        `json:"unit"`
	Samples []int32       `json:"samples"`
}

// End is the time just after the last sample.
func (w Waveform) End() time.Time {
	return w.Start.Add(time.Duration(len(w.Samples)) * w.Period)
}

// ObservationQuery selects one patient's readings of one code in [From, To).
// With Step > 0 the store aggregates into buckets of Step aligned to the Unix epoch.
type ObservationQuery struct {
	Patient string
	Code    string
	From    time.Time
	To      time.Time
	Step    time.Duration
	Limit   int // 0: no limit
}

// Aggregate summarises the readings of one bucket [Time, Time+Step).
type Aggregate struct {
	Time  time.Time `json:"time"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	Count int       `json:"count"`
}

// WaveformQuery selects one patient's waveform segments of one code overlapping [From, To).
type WaveformQuery struct {
	Patient string
	Code    string
	From    time.Time
	To      time.Time
}

// Batch is what one device delivered in one message, after validation and normalisation.
type Batch struct {
	Tenant       string        `json:"tenant"`
	Device       string        `json:"device"`
	Patient      string        `json:"patient"`
	Received     time.Time     `json:"received"`
	Observations []Observation `json:"observations,omitempty"`
	Waveforms    []Waveform    `json:"waveforms,omitempty"`
}

// Samples counts the individual values the batch carries.
func (b Batch) Samples() int {
	n := len(b.Observations)
	for _, w := range b.Waveforms {
		n += len(w.Samples)
	}
	return n
}
