package alarm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iomt/iomt"
)

// Duration is a time.Duration written as Go writes durations ("30s", "2m", "1h30m") in rule
// documents.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes the duration as "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "30s" or "1h30m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a form such as 30s, 2m or 1h30m", b)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", b)
	}
	*d = Duration(v)
	return nil
}

// Kind is what a rule watches.
type Kind string

// Rule kinds.
const (
	// Threshold compares one observation code with bands of limits (SpO2 < 90 medium,
	// < 85 high), with hysteresis and a validation delay.
	Threshold Kind = "threshold"
	// EventKind matches analytics events (iomt.Event) of one kind, with CEL conditions over
	// the event's data for raising and, optionally, clearing.
	EventKind Kind = "event"
	// Condition evaluates CEL expressions over the patient's latest readings and NEWS2.
	Condition Kind = "condition"
	// Offline raises when a device has sent nothing for a while.
	Offline Kind = "offline"
)

// Band is one limit of a threshold rule and the priority of crossing it.
type Band struct {
	Limit    float64  `yaml:"limit" json:"limit"`
	Priority Priority `yaml:"priority" json:"priority"`
}

// Level is one CEL condition of a condition rule and the priority while it holds.
type Level struct {
	When     string   `yaml:"when" json:"when"`
	Priority Priority `yaml:"priority" json:"priority"`
}

// CommandSpec asks a device of the patient to do something when the alarm is raised or its
// priority rises: for instance a blood pressure measurement when NEWS2 climbs.
type CommandSpec struct {
	Name   string         `yaml:"name" json:"name"`                     // e.g. "measure-bp"
	Target string         `yaml:"target" json:"target"`                 // device kind, e.g. "bp-monitor"
	Args   map[string]any `yaml:"args,omitempty" json:"args,omitempty"` // passed to the device as they are
}

// Rule is one alarm rule. Which fields apply depends on Kind; Validate refuses the others.
type Rule struct {
	ID       string   `yaml:"id" json:"id"`
	Kind     Kind     `yaml:"kind" json:"kind"`
	Category Category `yaml:"category,omitempty" json:"category,omitempty"` // default: technical for offline, else physiological
	Enabled  *bool    `yaml:"enabled,omitempty" json:"enabled,omitempty"`   // default true
	Message  string   `yaml:"message,omitempty" json:"message,omitempty"`   // {value} {limit} {code} {priority} {device} {event}

	// Delay is the validation delay: the condition must hold this long before it alarms (and a
	// worse band this long before the priority rises).
	Delay Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	// Latching alarms stay until someone resolves them; others resolve themselves when the
	// condition clears.
	Latching bool `yaml:"latching,omitempty" json:"latching,omitempty"`
	// PerDevice keeps one alarm per device rather than one per patient.
	PerDevice bool `yaml:"per_device,omitempty" json:"per_device,omitempty"`
	// Quality marks a signal-quality condition: while it is present on a device, readings of
	// that device neither raise nor clear physiological alarms.
	Quality bool `yaml:"quality,omitempty" json:"quality,omitempty"`

	// Threshold.
	Code       string  `yaml:"code,omitempty" json:"code,omitempty"`
	Below      []Band  `yaml:"below,omitempty" json:"below,omitempty"`
	Above      []Band  `yaml:"above,omitempty" json:"above,omitempty"`
	Hysteresis float64 `yaml:"hysteresis,omitempty" json:"hysteresis,omitempty"` // in the code's unit

	// Event.
	Event string `yaml:"event,omitempty" json:"event,omitempty"` // iomt.Event.Kind
	When  string `yaml:"when,omitempty" json:"when,omitempty"`   // CEL over event, kind, vitals, news2; default true
	Clear string `yaml:"clear,omitempty" json:"clear,omitempty"` // CEL; default: clears after Hold
	// Hold is how long an event rule without Clear stays present after its last matching
	// event (default 10m).
	Hold Duration `yaml:"hold,omitempty" json:"hold,omitempty"`

	// Event and offline rules alarm at Priority.
	Priority Priority `yaml:"priority,omitempty" json:"priority,omitempty"`

	// Condition: the first level that holds sets the priority.
	Levels []Level `yaml:"levels,omitempty" json:"levels,omitempty"`
	// ClearWhen, for condition rules, must hold before a raised alarm clears (hysteresis);
	// default: no level holds.
	ClearWhen string `yaml:"clear_when,omitempty" json:"clear_when,omitempty"`

	// Offline: no data from a device for After.
	After Duration `yaml:"after,omitempty" json:"after,omitempty"`

	Command *CommandSpec `yaml:"command,omitempty" json:"command,omitempty"`
}

// Override changes one rule for one patient: other limits (a COPD patient's SpO2 target of
// 88–92 %), another delay, or the rule off. Nil and empty fields keep the rule's own.
type Override struct {
	Enabled    *bool     `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	Below      []Band    `yaml:"below,omitempty" json:"below,omitempty"`
	Above      []Band    `yaml:"above,omitempty" json:"above,omitempty"`
	Hysteresis *float64  `yaml:"hysteresis,omitempty" json:"hysteresis,omitempty"`
	Delay      *Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	Priority   *Priority `yaml:"priority,omitempty" json:"priority,omitempty"`
	After      *Duration `yaml:"after,omitempty" json:"after,omitempty"`
	// Why is recorded with the override: who asked for it and on what grounds.
	Why string `yaml:"why,omitempty" json:"why,omitempty"`
}

// RuleSet is a tenant's versioned set of rules and per-patient overrides.
type RuleSet struct {
	Version int    `yaml:"version" json:"version"`
	Tenant  string `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	// Fresh is how long a latest reading stands in CEL's vitals, by code; "default" applies to
	// codes not listed (default 15m).
	Fresh    map[string]Duration            `yaml:"fresh,omitempty" json:"fresh,omitempty"`
	Rules    []Rule                         `yaml:"rules" json:"rules"`
	Patients map[string]map[string]Override `yaml:"patients,omitempty" json:"patients,omitempty"` // patient → rule ID → override
}

// ParseRuleSet reads a rule set from YAML or JSON (JSON is YAML). Unknown fields are refused,
// so a misspelt limit does not silently fall back to a default. It does not validate: Compile
// does.
func ParseRuleSet(r io.Reader) (RuleSet, error) {
	var rs RuleSet
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&rs); err != nil {
		if errors.Is(err, io.EOF) {
			return rs, fmt.Errorf("alarm: rule set: empty document: %w", iomt.ErrInvalid)
		}
		return rs, fmt.Errorf("alarm: rule set: %w: %w", iomt.ErrInvalid, err)
	}
	return rs, nil
}

// ParseRuleSetBytes is ParseRuleSet over a byte slice.
func ParseRuleSetBytes(b []byte) (RuleSet, error) { return ParseRuleSet(bytes.NewReader(b)) }

// RuleError is a refusal of one rule; it matches iomt.ErrInvalid.
type RuleError struct {
	Rule  string // rule ID, or "#3" for a rule without one
	Field string
	Err   error
}

func (e *RuleError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("alarm: rule %s: %v", e.Rule, e.Err)
	}
	return fmt.Sprintf("alarm: rule %s: %s: %v", e.Rule, e.Field, e.Err)
}

// Unwrap lets callers map the refusal to a protocol reply through iomt.ErrInvalid.
func (e *RuleError) Unwrap() []error { return []error{e.Err, iomt.ErrInvalid} }

func ruleErr(id, field, format string, a ...any) error {
	return &RuleError{Rule: id, Field: field, Err: fmt.Errorf(format, a...)}
}

// enabled reports whether the rule is on.
func (r *Rule) enabled() bool { return r.Enabled == nil || *r.Enabled }

// checkBands refuses bands that are empty of meaning: priorities must rise as the limit moves
// further from normal, and each limit must be a possible value of the code.
func checkBands(id, field string, bs []Band, below bool, lo, hi float64) error {
	for i, b := range bs {
		if b.Priority < Low || b.Priority > High {
			return ruleErr(id, field, "band %d: priority must be low, medium or high", i+1)
		}
		if b.Limit < lo || b.Limit > hi {
			return ruleErr(id, field, "band %d: limit %g outside the code's possible range %g–%g", i+1, b.Limit, lo, hi)
		}
		if i == 0 {
			continue
		}
		p := bs[i-1]
		further := b.Limit > p.Limit
		if below {
			further = b.Limit < p.Limit
		}
		if !further || b.Priority <= p.Priority {
			dir := "higher"
			if below {
				dir = "lower"
			}
			return ruleErr(id, field, "band %d (%g %s) must be %s than band %d (%g %s) and of higher priority",
				i+1, b.Limit, b.Priority, dir, i, p.Limit, p.Priority)
		}
	}
	return nil
}

// message fills a rule's message template.
func message(tmpl string, a *Alarm) string {
	if tmpl == "" {
		tmpl = "{rule}: {priority}"
	}
	r := strings.NewReplacer(
		"{rule}", a.Rule,
		"{value}", trimFloat(a.Value),
		"{limit}", trimFloat(a.Limit),
		"{code}", a.Code,
		"{priority}", a.Priority.String(),
		"{device}", a.Device,
		"{event}", a.Event,
	)
	return r.Replace(tmpl)
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// sortedKeys returns a map's keys in order, for deterministic iteration.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
