package alarm

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// A rule whose CEL expression may cost more than MaxCost (nested comprehensions over a
// patient's vitals, or over long lists) is refused when the rule set is compiled, naming the
// rule, the field, the estimated cost and the limit; the default rules and a single
// comprehension over the vitals are accepted.
func TestCostlyRuleRefused(t *testing.T) {
	list := "[" + strings.Repeat("1,", 299) + "1]"
	for _, c := range []struct{ name, when, want string }{
		{"vitals-squared", `vitals.all(a, vitals.all(b, vitals[a] != vitals[b] || a == b))`, "may cost up to"},
		{"lists-cubed", list + `.all(x, ` + list + `.all(y, x * y > 0))`, "may cost up to"},
		{"matches", `event.kind.matches("(a+)+$") && ` + list + `.exists(x, ` + list + `.exists(y, x == y + 1))`, "may cost up to"},
	} {
		doc := fmt.Sprintf("version: 1\nrules:\n  - id: ok\n    kind: condition\n    levels:\n      - {when: \"news2.total >= 5\", priority: medium}\n  - id: %s\n    kind: condition\n    levels:\n      - when: '%s'\n        priority: high\n", c.name, c.when)
		rs, err := ParseRuleSetBytes([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(rs, nil)
		var re *RuleError
		if !errors.As(err, &re) || re.Rule != c.name || re.Field != "levels[0].when" ||
			!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fmt.Sprintf("more than the limit of %d", MaxCost)) {
			t.Errorf("%s: %v, want a RuleError of rule %s, levels[0].when, with the estimate and the limit", c.name, err, c.name)
		}
	}
	if _, err := DefaultRules(); err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRuleSetBytes([]byte("version: 1\nrules:\n  - id: any-high\n    kind: condition\n    levels:\n      - {when: 'vitals.exists(k, vitals[k] > 1000.0)', priority: low}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(rs, nil); err != nil {
		t.Errorf("one comprehension over the vitals: %v", err)
	}
}

// An expression whose estimate is within the limit for the data it expects is stopped at
// MaxCost when the data is larger than that (here an event carrying 200,000 samples rather
// than the 1,024 the estimate assumes): it counts as false although its last sample matches,
// the stop is logged once with the rule, and another patient's alarm is raised as usual.
func TestCostBoundedAtEvaluation(t *testing.T) {
	doc := `version: 1
rules:
  - id: spike
    kind: event
    event: samples
    when: 'event.samples.exists(x, x > 1000.0)'
    priority: high
  - id: fall
    kind: event
    event: fall
    priority: high
`
	rs, err := ParseRuleSetBytes([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(rs, codes.New())
	if err != nil {
		t.Fatalf("the rule is within the limit for the data it expects: %v", err)
	}
	var logs bytes.Buffer
	c := newClock()
	e := newEngine(t, c, Config{Rules: r, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	samples := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"samples":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("1.5")
		}
		b.WriteString(`,2000]}`)
		return []byte(b.String())
	}
	// Within the estimate: evaluated to the end, the last sample raises.
	if chs := e.Event(iomt.Event{Patient: "small", Kind: "samples", Time: c.now, Data: samples(100)}); count(chs, Raised)["spike"] != 1 {
		t.Fatalf("100 samples: %+v, want spike raised", chs)
	}
	for range 3 {
		if chs := e.Event(iomt.Event{Patient: "big", Kind: "samples", Time: c.now, Data: samples(200_000)}); count(chs, Raised)["spike"] != 0 {
			t.Fatalf("200,000 samples: %+v, want the evaluation stopped (false)", chs)
		}
	}
	if n := strings.Count(logs.String(), "stopped at the cost limit"); n != 1 || !strings.Contains(logs.String(), "rule=spike") {
		t.Errorf("log: %d lines about the cost limit, want 1 naming the rule:\n%s", n, logs.String())
	}
	if chs := e.Event(iomt.Event{Patient: "other", Kind: "fall", Time: c.now, Data: []byte(`{}`)}); count(chs, Raised)["fall"] != 1 {
		t.Errorf("another patient's fall: %+v, want raised", chs)
	}
}

// Control characters and over-long text in a rule's ID or message are refused with the rule
// and the field.
func TestRuleText(t *testing.T) {
	for _, c := range []struct{ rule, field, want string }{
		{"id: \"spo2\\0low\"\n    kind: offline\n    after: 1m", "id", `rule "spo2\x00low": id: has a control character (U+0000)`},
		{"id: off\n    kind: offline\n    after: 1m\n    message: \"device \\e[31m gone\"", "message", "rule off: message: has a control character (U+001B)"},
		{"id: " + strings.Repeat("r", 201) + "\n    kind: offline\n    after: 1m", "id", "id: is 201 bytes long, at most 200"},
	} {
		rs, err := ParseRuleSetBytes([]byte("version: 1\nrules:\n  - " + c.rule + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(rs, nil)
		var re *RuleError
		if !errors.As(err, &re) || re.Field != c.field || !strings.Contains(err.Error(), c.want) || !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("%.40q: %v, want a RuleError on %s saying %q", c.rule, err, c.field, c.want)
		}
	}
}
