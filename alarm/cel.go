package alarm

import (
	"errors"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/iomt/iomt/analytics/news2"
)

// activation gives a CEL program a patient's state without building a map per evaluation.
type activation struct {
	p      *patient
	device string
	event  map[string]any
	kind   string
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "vitals":
		return types.NewMap(types.DefaultTypeAdapter, a.p.vitals), true
	case "news2":
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, a.p.news2Map()), true
	case "patient":
		return a.p.id, true
	case "device":
		return a.device, true
	case "event":
		if a.event == nil {
			return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{}), true
		}
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, a.event), true
	case "kind":
		return a.kind, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// eval runs a compiled condition of a rule. An error (most often a reading the patient does
// not have: "no such key") counts as false: a condition that cannot be evaluated does not
// alarm. One stopped for costing more than MaxCost (data larger than the estimate assumed)
// counts as false too, and is logged once per rule, so that the cost of one rule never delays
// another patient's alarms.
func (e *Engine) eval(rule string, p cel.Program, act *activation) bool {
	v, _, err := p.Eval(act)
	if err != nil {
		var ce interpreter.EvalCancelledError
		if errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded && !e.overCost[rule] {
			if e.overCost == nil {
				e.overCost = map[string]bool{}
			}
			e.overCost[rule] = true
			e.log.Warn("alarm rule's CEL expression stopped at the cost limit; it counts as false", "rule", rule, "patient", act.p.id, "limit", MaxCost)
		}
		return false
	}
	b, ok := v.Value().(bool)
	return ok && b
}

func news2Total(act *activation) float64 {
	t, _ := act.p.news2Map()["total"].(int64)
	return float64(t)
}

// Charted NEWS2 inputs (see the codes catalog).
const (
	codeACVPU  = "1104441000000107"
	codeO2Flow = "3151-8"
)

// news2Map is NEWS2 from the patient's fresh readings. Consciousness and supplemental oxygen
// come from a nurse's chart when it is fresh and count 0 otherwise, and SpO2 is scored on the
// patient's scale once the NEWS2 scorer has told it (NEWS2Event), on the lower of the two
// scales' scores until then: the total is then a lower bound of the charted score ("complete"
// says whether all seven parameters were there), and a rule on it never alarms because of an
// assumption.
func (p *patient) news2Map() map[string]any {
	if p.news2 != nil {
		return p.news2
	}
	var s news2.SubScores
	have := 0
	get := func(codes ...string) (float64, bool) {
		for _, c := range codes {
			if v, ok := p.vitals[c]; ok {
				have++
				return v, true
			}
		}
		return 0, false
	}
	// What a nurse charted (consciousness, oxygen delivery), while fresh, completes the score.
	if v, ok := get(codeACVPU); ok && news2.ACVPU(v) > news2.Alert {
		s.Consciousness = 3
	}
	oxygen := false
	if v, ok := get(codeO2Flow); ok && v > 0 {
		s.AirOrOxygen, oxygen = 2, true
	}
	if v, ok := get(news2.CodeRespRate); ok {
		s.RespRate = news2.RespRateScore(v)
	}
	if v, ok := get(news2.CodeSpO2, news2.CodeSaO2); ok {
		if p.scale != 0 {
			s.SpO2 = news2.SpO2Score(v, p.scale, oxygen)
		} else {
			s.SpO2 = min(news2.SpO2Score(v, news2.Scale1, oxygen), news2.SpO2Score(v, news2.Scale2, oxygen))
		}
	}
	if v, ok := get(news2.CodeSBP); ok {
		s.SBP = news2.SBPScore(v)
	}
	if v, ok := get(news2.CodePulse, news2.CodePulseOx); ok {
		s.Pulse = news2.PulseScore(v)
	}
	if v, ok := get(news2.CodeTemp); ok {
		s.Temp = news2.TempScore(v)
	}
	r := news2.Aggregate(s)
	p.news2 = map[string]any{
		"total":    int64(r.Total),
		"band":     r.Band.String(),
		"red":      r.RedScore,
		"complete": have == 7,
		"params":   int64(have),
		"scale":    int64(p.scale),
	}
	return p.news2
}
