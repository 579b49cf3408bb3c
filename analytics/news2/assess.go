package news2

import (
	"fmt"
	"slices"
	"time"

	"github.com/iomt/iomt"
)

// LOINC codes read by Assess (the catalog's canonical IDs; units are the catalog's canonical
// UCUM units: /min, %, mm[Hg], Cel).
const (
	CodeRespRate = "9279-1"
	CodeSpO2     = "59408-5" // pulse oximetry; CodeSaO2 is accepted too
	CodeSaO2     = "2708-6"
	CodeSBP      = "8480-6"
	CodePulse    = "8867-4" // heart rate; CodePulseOx is accepted too
	CodePulseOx  = "8889-8"
	CodeTemp     = "8310-5"
)

// Param names one NEWS2 parameter.
type Param string

// Parameters, in chart order.
const (
	ParamRespRate    Param = "respRate"
	ParamSpO2        Param = "spo2"
	ParamAirOrOxygen Param = "airOrOxygen"
	ParamSBP         Param = "sbp"
	ParamPulse       Param = "pulse"
	ParamACVPU       Param = "consciousness"
	ParamTemp        Param = "temp"
)

// Freshness is how old each parameter's latest reading may be for a score to stand on it.
type Freshness map[Param]time.Duration

// DefaultFreshness suits a monitored ward patient: parameters a bedside monitor measures
// continuously (respiration, SpO2, pulse) must be from the last 15 minutes; intermittent ones
// from within an hour (non-invasive blood pressure, consciousness, oxygen delivery) or four
// hours (temperature, the usual spot-check interval). These are operational defaults for
// when a score is still trustworthy, not clinical guidance; a deployment sets its own.
func DefaultFreshness() Freshness {
	return Freshness{
		ParamRespRate: 15 * time.Minute, ParamSpO2: 15 * time.Minute, ParamPulse: 15 * time.Minute,
		ParamSBP: time.Hour, ParamACVPU: time.Hour, ParamAirOrOxygen: time.Hour,
		ParamTemp: 4 * time.Hour,
	}
}

// Inputs are what Assess scores from. Observations may hold any codes in any order; for each
// parameter the latest reading not after now is used. Consciousness and oxygen delivery are
// charted observations without a vital-sign code and come with their own times; a zero time
// means not recorded.
type Inputs struct {
	Observations []iomt.Observation
	ACVPU        ACVPU
	ACVPUTime    time.Time
	Oxygen       bool
	OxygenTime   time.Time
	Scale        Scale // 0: scale 1
}

// Reading is the value a parameter was scored from.
type Reading struct {
	Value float64   `json:"value"`
	Time  time.Time `json:"time"`
}

// Assessment is a NEWS2 from the latest observations. Result is nil unless every parameter
// is present and fresh; Missing and Stale then say which are not. Partial is the sum of the
// sub-scores that could be computed: a lower bound, never a score.
type Assessment struct {
	Result   *Result           `json:"result,omitempty"`
	Missing  []Param           `json:"missing,omitempty"`
	Stale    map[Param]string  `json:"stale,omitempty"` // parameter: age beyond its limit
	Used     map[Param]Reading `json:"used"`
	Partial  int               `json:"partial"`
	Complete bool              `json:"complete"`
}

// Assess computes NEWS2 at time now.
func Assess(now time.Time, in Inputs, fresh Freshness) (Assessment, error) {
	// The newest reading of each charted code: a handful, so a slice on the stack rather than
	// a map (the pipeline assesses a patient at every SpO2 reading).
	var buf [8]iomt.Observation
	latest := buf[:0]
	for _, o := range in.Observations {
		if o.Time.After(now) {
			continue
		}
		switch o.Code {
		case CodeSaO2:
			o.Code = CodeSpO2
		case CodePulseOx:
			o.Code = CodePulse
		}
		i := slices.IndexFunc(latest, func(l iomt.Observation) bool { return l.Code == o.Code })
		switch {
		case i < 0:
			latest = append(latest, o)
		case o.Time.After(latest[i].Time):
			latest[i] = o
		}
	}
	a := Assessment{Used: make(map[Param]Reading, 7)}
	missing := func(p Param) {
		if a.Missing == nil {
			a.Missing = make([]Param, 0, 7) // one allocation, however many are missing
		}
		a.Missing = append(a.Missing, p)
	}
	check := func(p Param, t time.Time, v float64) bool {
		if t.IsZero() {
			missing(p)
			return false
		}
		a.Used[p] = Reading{Value: v, Time: t}
		if lim, ok := fresh[p]; ok && now.Sub(t) > lim {
			if a.Stale == nil {
				a.Stale = map[Param]string{}
			}
			a.Stale[p] = fmt.Sprintf("%s old, limit %s", now.Sub(t).Round(time.Second), lim)
			return false
		}
		return true
	}
	var v Vitals
	v.Scale = in.Scale
	if v.Scale == 0 {
		v.Scale = Scale1
	}
	obs := func(p Param, code string) (float64, bool) {
		i := slices.IndexFunc(latest, func(l iomt.Observation) bool { return l.Code == code })
		if i < 0 {
			missing(p)
			return 0, false
		}
		return latest[i].Value, check(p, latest[i].Time, latest[i].Value)
	}
	okRR, okSpO2, okSBP, okPulse, okTemp := false, false, false, false, false
	if v.RespRate, okRR = obs(ParamRespRate, CodeRespRate); okRR {
		a.Partial += RespRateScore(v.RespRate)
	}
	okO2 := check(ParamAirOrOxygen, in.OxygenTime, boolValue(in.Oxygen))
	v.Oxygen = in.Oxygen
	if okO2 && in.Oxygen {
		a.Partial += 2
	}
	if v.SpO2, okSpO2 = obs(ParamSpO2, CodeSpO2); okSpO2 && (okO2 || v.Scale == Scale1) {
		// On scale 2 the SpO2 score depends on oxygen delivery, so it needs that too.
		a.Partial += SpO2Score(v.SpO2, v.Scale, v.Oxygen)
	}
	if v.SBP, okSBP = obs(ParamSBP, CodeSBP); okSBP {
		a.Partial += SBPScore(v.SBP)
	}
	if v.Pulse, okPulse = obs(ParamPulse, CodePulse); okPulse {
		a.Partial += PulseScore(v.Pulse)
	}
	v.ACVPU = in.ACVPU
	okC := check(ParamACVPU, in.ACVPUTime, float64(in.ACVPU))
	if okC && in.ACVPU > Alert {
		a.Partial += 3
	}
	if v.Temp, okTemp = obs(ParamTemp, CodeTemp); okTemp {
		a.Partial += TempScore(v.Temp)
	}
	if !(okRR && okSpO2 && okO2 && okSBP && okPulse && okC && okTemp) {
		return a, nil
	}
	r, err := Score(v)
	if err != nil {
		return a, fmt.Errorf("news2: scoring latest observations: %w", err)
	}
	a.Result, a.Complete, a.Partial = &r, true, r.Total
	return a, nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
