// Package news2 computes the National Early Warning Score 2 exactly as chart 1 of the Royal
// College of Physicians (2017): sub-scores for respiration rate, SpO2 on scale 1 or scale 2,
// air or oxygen, systolic blood pressure, pulse, consciousness (ACVPU) and temperature; the
// aggregate; the single-parameter-3 rule; and the clinical response band.
//
// Score scores one complete set of observations. Assess builds that set from a patient's latest
// observations and refuses to score when a parameter is missing or older than its freshness
// limit: a missing parameter is reported, never scored 0. The package is pure: no I/O, no clock.
package news2

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrInvalid is wrapped by errors about impossible or unknown input values.
var ErrInvalid = errors.New("news2: invalid input")

// Scale is the SpO2 scoring scale. Scale2 is for patients with hypercapnic respiratory failure
// for whom a clinician has prescribed a target saturation of 88–92 %.
type Scale int

// SpO2 scales.
const (
	Scale1 Scale = 1
	Scale2 Scale = 2
)

// ACVPU is the level of consciousness.
type ACVPU int

// ACVPU levels. New confusion scores as much as responding only to voice, pain or nothing.
const (
	Alert ACVPU = iota + 1
	Confusion
	Voice
	Pain
	Unresponsive
)

var acvpuLetters = [...]string{Alert: "A", Confusion: "C", Voice: "V", Pain: "P", Unresponsive: "U"}

func (a ACVPU) String() string {
	if a >= Alert && a <= Unresponsive {
		return acvpuLetters[a]
	}
	return fmt.Sprintf("ACVPU(%d)", int(a))
}

// ParseACVPU reads A, C, V, P or U (either case).
func ParseACVPU(s string) (ACVPU, error) {
	for a := Alert; a <= Unresponsive; a++ {
		if strings.EqualFold(s, acvpuLetters[a]) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: consciousness must be one of A, C, V, P, U, got %q", ErrInvalid, s)
}

// Vitals is one complete set of observations.
type Vitals struct {
	RespRate float64 // breaths per minute
	SpO2     float64 // %
	Scale    Scale   // 0 means Scale1
	Oxygen   bool    // on supplemental oxygen (false: air)
	SBP      float64 // systolic blood pressure, mmHg
	Pulse    float64 // per minute
	ACVPU    ACVPU
	Temp     float64 // °C
}

// SubScores are the chart's seven parameter scores.
type SubScores struct {
	RespRate      int `json:"respRate"`
	SpO2          int `json:"spo2"`
	AirOrOxygen   int `json:"airOrOxygen"`
	SBP           int `json:"sbp"`
	Pulse         int `json:"pulse"`
	Consciousness int `json:"consciousness"`
	Temp          int `json:"temp"`
}

func (s SubScores) list() [7]int {
	return [7]int{s.RespRate, s.SpO2, s.AirOrOxygen, s.SBP, s.Pulse, s.Consciousness, s.Temp}
}

// Band is the clinical risk band that sets the response.
type Band int

// Bands in increasing order of risk.
const (
	Low       Band = iota + 1 // aggregate 0–4
	LowMedium                 // a single parameter scores 3 (aggregate under 5)
	Medium                    // aggregate 5–6
	High                      // aggregate 7 or more
)

var bandNames = [...]string{Low: "low", LowMedium: "low-medium", Medium: "medium", High: "high"}

func (b Band) String() string {
	if b >= Low && b <= High {
		return bandNames[b]
	}
	return fmt.Sprintf("Band(%d)", int(b))
}

// MarshalText writes the band's name.
func (b Band) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Response is the RCP's clinical response for the band.
func (b Band) Response(total int) string {
	switch b {
	case High:
		return "emergency response: urgent assessment by a team with critical-care competencies; usually transfer to a higher level of care"
	case Medium:
		return "urgent response: urgent review by a clinician skilled in assessing acutely ill patients"
	case LowMedium:
		return "urgent ward-based response: review by a registered nurse and a medical decision on escalation"
	}
	if total == 0 {
		return "routine monitoring: minimum every 12 hours"
	}
	return "ward-based response: assessment by a registered nurse; minimum 4–6 hourly monitoring"
}

// Result is a scored set of observations.
type Result struct {
	Sub   SubScores `json:"subScores"`
	Total int       `json:"total"`
	// RedScore is true when any single parameter scores 3.
	RedScore bool `json:"redScore"`
	Band     Band `json:"band"`
}

// Physically possible ranges; anything outside is an input error, not a score.
var limits = []struct {
	name   string
	lo, hi float64
}{
	{"respiration rate", 0, 200}, {"SpO2", 0, 100}, {"systolic BP", 0, 400}, {"pulse", 0, 400}, {"temperature", 15, 46},
}

// Score scores a complete set. Respiration rate, SpO2, systolic BP and pulse are rounded to
// whole numbers and temperature to one decimal (half away from zero), as the chart records
// them; the bands are then applied exactly.
func Score(v Vitals) (Result, error) {
	vals := []float64{v.RespRate, v.SpO2, v.SBP, v.Pulse, v.Temp}
	for i, l := range limits {
		x := vals[i]
		if math.IsNaN(x) || x < l.lo || x > l.hi {
			return Result{}, fmt.Errorf("%w: %s %v outside %v–%v", ErrInvalid, l.name, x, l.lo, l.hi)
		}
	}
	scale := v.Scale
	if scale == 0 {
		scale = Scale1
	}
	if scale != Scale1 && scale != Scale2 {
		return Result{}, fmt.Errorf("%w: SpO2 scale must be 1 or 2, got %d", ErrInvalid, int(v.Scale))
	}
	if v.ACVPU < Alert || v.ACVPU > Unresponsive {
		return Result{}, fmt.Errorf("%w: consciousness level %d is not one of A, C, V, P, U", ErrInvalid, int(v.ACVPU))
	}
	var s SubScores
	s.RespRate = RespRateScore(v.RespRate)
	s.SpO2 = SpO2Score(v.SpO2, scale, v.Oxygen)
	if v.Oxygen {
		s.AirOrOxygen = 2
	}
	s.SBP = SBPScore(v.SBP)
	s.Pulse = PulseScore(v.Pulse)
	if v.ACVPU != Alert {
		s.Consciousness = 3
	}
	s.Temp = TempScore(v.Temp)
	return Aggregate(s), nil
}

// Aggregate totals sub-scores and sets the red-score flag and the band.
func Aggregate(s SubScores) Result {
	r := Result{Sub: s}
	for _, x := range s.list() {
		r.Total += x
		if x == 3 {
			r.RedScore = true
		}
	}
	switch {
	case r.Total >= 7:
		r.Band = High
	case r.Total >= 5:
		r.Band = Medium
	case r.RedScore:
		r.Band = LowMedium
	default:
		r.Band = Low
	}
	return r
}

func whole(x float64) float64 { return math.Round(x) }

// RespRateScore: ≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2, ≥25 → 3.
func RespRateScore(rr float64) int {
	switch r := whole(rr); {
	case r <= 8:
		return 3
	case r <= 11:
		return 1
	case r <= 20:
		return 0
	case r <= 24:
		return 2
	}
	return 3
}

// SpO2Score scores saturation. Scale 1: ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0. Scale 2:
// ≤83 → 3, 84–85 → 2, 86–87 → 1, 88–92 → 0, ≥93 on air → 0, and on oxygen 93–94 → 1,
// 95–96 → 2, ≥97 → 3.
func SpO2Score(spo2 float64, scale Scale, oxygen bool) int {
	s := whole(spo2)
	if scale != Scale2 {
		switch {
		case s <= 91:
			return 3
		case s <= 93:
			return 2
		case s <= 95:
			return 1
		}
		return 0
	}
	switch {
	case s <= 83:
		return 3
	case s <= 85:
		return 2
	case s <= 87:
		return 1
	case s <= 92 || !oxygen:
		return 0
	case s <= 94:
		return 1
	case s <= 96:
		return 2
	}
	return 3
}

// SBPScore: ≤90 → 3, 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3.
func SBPScore(sbp float64) int {
	switch s := whole(sbp); {
	case s <= 90:
		return 3
	case s <= 100:
		return 2
	case s <= 110:
		return 1
	case s <= 219:
		return 0
	}
	return 3
}

// PulseScore: ≤40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1, 111–130 → 2, ≥131 → 3.
func PulseScore(pulse float64) int {
	switch p := whole(pulse); {
	case p <= 40:
		return 3
	case p <= 50:
		return 1
	case p <= 90:
		return 0
	case p <= 110:
		return 1
	case p <= 130:
		return 2
	}
	return 3
}

// TempScore: ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0, 38.1–39.0 → 1, ≥39.1 → 2.
func TempScore(temp float64) int {
	// Work in tenths of a degree so that 36.0 is exactly 360 whatever its binary form.
	switch t := math.Round(temp * 10); {
	case t <= 350:
		return 3
	case t <= 360:
		return 1
	case t <= 380:
		return 0
	case t <= 390:
		return 1
	}
	return 2
}
