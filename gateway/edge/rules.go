package edge

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/iomt/iomt/codes"
)

// Rule is one local alarm condition: a reading of Code that compares to Threshold by Op.
// Rules are data, so a site can tune them in a file (ParseRules) without a new build.
type Rule struct {
	Name string `yaml:"name" json:"name"` // unique, e.g. spo2-low; appears in alerts
	// Code is any name the catalog knows (LOINC code, MDC reference id, alias); the rule
	// applies to readings filed under the code it resolves to.
	Code string `yaml:"code" json:"code"`
	// Op is one of <, <=, >, >=.
	Op string `yaml:"op" json:"op"`
	// Threshold is in the code's canonical UCUM unit (% for SpO2, /min for heart rate).
	Threshold float64 `yaml:"threshold" json:"threshold"`
}

// DefaultRules are the conditions a bedside nurse must not miss while the cloud is out of
// reach: desaturation, tachycardia and bradycardia (by ECG and by oximetry), hypotension.
func DefaultRules() []Rule {
	return []Rule{
		{Name: "spo2-low", Code: "59408-5", Op: "<", Threshold: 85},
		{Name: "sao2-low", Code: "2708-6", Op: "<", Threshold: 85},
		{Name: "hr-high", Code: "8867-4", Op: ">", Threshold: 150},
		{Name: "hr-low", Code: "8867-4", Op: "<", Threshold: 40},
		{Name: "pulse-high", Code: "8889-8", Op: ">", Threshold: 150},
		{Name: "pulse-low", Code: "8889-8", Op: "<", Threshold: 40},
		{Name: "systolic-low", Code: "8480-6", Op: "<", Threshold: 90},
	}
}

// ErrRule is matched by every refusal of a rule set.
var ErrRule = errors.New("edge: invalid rule")

// RuleError names the rule at fault and why.
type RuleError struct {
	Index  int    // 0-based position in the list
	Name   string // the rule's name, if it has one
	Reason string
}

func (e *RuleError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("edge: rules[%d] (%s): %s", e.Index, e.Name, e.Reason)
	}
	return fmt.Sprintf("edge: rules[%d]: %s", e.Index, e.Reason)
}

// Is makes a RuleError match ErrRule.
func (e *RuleError) Is(target error) bool { return target == ErrRule }

// ParseRules reads a rule file:
//
//	rules:
//	  - {name: spo2-low, code: spo2, op: "<", threshold: 88}
//	  - {name: temp-high, code: 8310-5, op: ">=", threshold: 39.5}
//
// Unknown keys, unknown codes, panels, unknown operators, thresholds outside the code's
// possible range and repeated names are refused. The rules are returned with Code replaced by
// the catalog id.
func ParseRules(data []byte, cat *codes.Catalog) ([]Rule, error) {
	var doc struct {
		Rules []Rule `yaml:"rules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("edge: rule file: %w", err)
	}
	if len(doc.Rules) == 0 {
		return nil, fmt.Errorf("%w: the rule file has no rules (to use the defaults, give none)", ErrRule)
	}
	return checkRules(doc.Rules, cat)
}

// ruleName is what a rule may be called: it goes in logs and webhook bodies.
var ruleName = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]{0,63}$`)

// checkRules validates rules and returns a copy with catalog ids as codes.
func checkRules(rules []Rule, cat *codes.Catalog) ([]Rule, error) {
	out := make([]Rule, len(rules))
	names := make(map[string]int, len(rules))
	for i, r := range rules {
		bad := func(format string, args ...any) error {
			return &RuleError{Index: i, Name: r.Name, Reason: fmt.Sprintf(format, args...)}
		}
		if !ruleName.MatchString(r.Name) {
			return nil, bad("name %q: give letters, digits, - _ . (at most 64)", r.Name)
		}
		if j, dup := names[r.Name]; dup {
			return nil, bad("name %q is already used by rules[%d]", r.Name, j)
		}
		names[r.Name] = i
		c, ok := cat.Lookup(r.Code)
		if !ok {
			return nil, bad("unknown code %q (use a LOINC code, an MDC reference id or an alias from the codes catalog)", r.Code)
		}
		if c.Kind == codes.Panel {
			return nil, bad("%s is a panel without a value of its own: write a rule for one of %v", c.Display, c.Components)
		}
		switch r.Op {
		case "<", "<=", ">", ">=":
		default:
			return nil, bad("op %q: use <, <=, > or >=", r.Op)
		}
		if r.Threshold < c.Min || r.Threshold > c.Max {
			return nil, bad("threshold %g is outside the possible range %g..%g %s of %s: thresholds are in the canonical unit", r.Threshold, c.Min, c.Max, c.Unit, c.Display)
		}
		r.Code = c.ID
		out[i] = r
	}
	return out, nil
}

// violated reports whether v meets the rule's alarm condition.
func (r Rule) violated(v float64) bool {
	switch r.Op {
	case "<":
		return v < r.Threshold
	case "<=":
		return v <= r.Threshold
	case ">":
		return v > r.Threshold
	case ">=":
		return v >= r.Threshold
	}
	return false
}
