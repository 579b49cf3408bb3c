package alarm

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// DefaultFresh is how long a latest reading stands in CEL's vitals unless a rule set says.
const DefaultFresh = 15 * time.Minute

// DefaultHold is how long an event rule without a clear condition stays present.
const DefaultHold = 10 * time.Minute

// Rules is a compiled, validated rule set: immutable and safe to share between engines.
type Rules struct {
	set        RuleSet
	rules      []*compiled
	ids        map[string]*compiled // rules by ID
	byCode     map[string][]*compiled
	byEvent    map[string][]*compiled
	conditions []*compiled
	offline    []*compiled
	quality    []*compiled
	fresh      map[string]time.Duration
	freshDef   time.Duration
	// overrides holds, per patient, the rules that patient's overrides change (by index).
	overrides map[string]map[int]*compiled
}

type compiled struct {
	Rule
	index     int // slot of the rule's trackers in a patient's state
	when      cel.Program
	clear     cel.Program
	clearWhen cel.Program
	levels    []cel.Program
}

// Set returns the source of the compiled rules.
func (r *Rules) Set() RuleSet { return r.set }

// Version is the rule set's version.
func (r *Rules) Version() int { return r.set.Version }

// rule returns rule c as it applies to the patient.
func (r *Rules) rule(patient string, c *compiled) *compiled {
	if r.overrides == nil {
		return c
	}
	if o := r.overrides[patient]; o != nil {
		if oc := o[c.index]; oc != nil {
			return oc
		}
	}
	return c
}

func (r *Rules) freshFor(code string) time.Duration {
	if d, ok := r.fresh[code]; ok {
		return d
	}
	return r.freshDef
}

// MaxCost bounds what one CEL expression of a rule may cost, in CEL's cost units (about one
// per operation, a comparison of strings one per ten bytes): rules run for every reading of
// every patient a node owns, so one costly rule would delay the alarms of them all (it once
// slowed another patient's alarm from 0.3 s to 1.8 s). A rule set is refused when saved if an
// expression's estimated worst case exceeds it, and an evaluation that exceeds it anyway is
// stopped and counts as false. The default rules cost at most a few dozen; a comprehension over
// a patient's vitals a few thousand; nested comprehensions over them are refused.
const MaxCost = 10_000

// cheap is the estimated cost at or below which nothing in an expression grows with the size
// of its input (with the sizes below, any comprehension or string operation on event data is
// estimated above it): such programs run without cost tracking, which costs about four
// allocations per evaluation, on the hot path of every reading. Every other program is
// stopped at MaxCost when it runs.
const cheap = 100

// celEnv declares what rule expressions may read.
func celEnv() (*cel.Env, error) {
	return cel.NewEnv(
		// Before any cost is counted: the parser's own bounds on a rule's text.
		cel.ParserExpressionSizeLimit(iomt.MaxTextLen),
		// vitals are doubles; let rules compare them with integer literals (hr > 130).
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("vitals", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.Variable("news2", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("patient", cel.StringType),
		cel.Variable("device", cel.StringType),
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("kind", cel.StringType),
	)
}

// compiler compiles a rule set's CEL expressions in one environment, bounding their cost.
type compiler struct {
	env *cel.Env
	est sizes
	max uint64 // MaxCost, but for tests
}

func newCompiler(cat *codes.Catalog) (*compiler, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("alarm: CEL environment: %w", err)
	}
	return &compiler{env: env, est: sizes{vitals: uint64(len(cat.All()))}, max: MaxCost}, nil
}

// compileExpr compiles a boolean CEL expression; the error carries CEL's own message, or, for
// an expression that may cost more than the limit, the estimate and the limit.
func (cc *compiler) compileExpr(id, field, src string) (cel.Program, error) {
	ast, iss := cc.env.Compile(src)
	if iss.Err() != nil {
		return nil, &RuleError{Rule: id, Field: field, Err: fmt.Errorf("CEL: %w", iss.Err())}
	}
	// dyn is allowed: news2.red and event fields are only known to be bool when evaluated.
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, ruleErr(id, field, "CEL expression %q is of type %s, want bool", src, ast.OutputType())
	}
	est, err := cc.env.EstimateCost(ast, cc.est)
	if err != nil {
		return nil, &RuleError{Rule: id, Field: field, Err: fmt.Errorf("CEL cost: %w", err)}
	}
	if est.Max > cc.max {
		return nil, ruleErr(id, field, "CEL expression %q may cost up to %s, more than the limit of %d (every rule runs on every reading of every patient: avoid nested comprehensions and long lists)",
			src, costString(est.Max), cc.max)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > cheap {
		// Bounded at run time too, should the data be larger than the estimate assumed.
		opts = append(opts, cel.CostLimit(cc.max))
	}
	p, err := cc.env.Program(ast, opts...)
	if err != nil {
		return nil, &RuleError{Rule: id, Field: field, Err: fmt.Errorf("CEL: %w", err)}
	}
	return p, nil
}

// Compile validates a rule set and compiles its expressions. Every refusal names the rule and
// the field, and a bad CEL expression carries CEL's message; all refusals are joined.
func Compile(rs RuleSet, cat *codes.Catalog) (*Rules, error) {
	if cat == nil {
		cat = codes.New()
	}
	cc, err := newCompiler(cat)
	if err != nil {
		return nil, err
	}
	var errs []error
	if rs.Version < 1 {
		errs = append(errs, ruleErr("set", "version", "must be 1 or more, got %d", rs.Version))
	}
	r := &Rules{set: rs, byCode: map[string][]*compiled{}, byEvent: map[string][]*compiled{},
		fresh: map[string]time.Duration{}, freshDef: DefaultFresh}
	for k, d := range rs.Fresh {
		if k == "default" {
			r.freshDef = d.D()
			continue
		}
		c, ok := cat.Lookup(k)
		if !ok {
			errs = append(errs, ruleErr("set", "fresh", "unknown code %q", k))
			continue
		}
		r.fresh[c.ID] = d.D()
	}
	seen := map[string]bool{}
	for i, rule := range rs.Rules {
		id := rule.ID
		if id == "" {
			errs = append(errs, ruleErr(fmt.Sprintf("#%d", i+1), "id", "missing"))
			continue
		}
		if seen[id] {
			errs = append(errs, ruleErr(id, "id", "used by more than one rule"))
			continue
		}
		seen[id] = true
		if err := checkRuleText(rule); err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := compileRule(cc, cat, rule)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.index = len(r.rules)
		r.rules = append(r.rules, c)
		// Disabled rules are indexed too: a patient's override may enable them.
		if c.Quality {
			r.quality = append(r.quality, c)
		}
		switch c.Kind {
		case Threshold:
			r.byCode[c.Code] = append(r.byCode[c.Code], c)
		case EventKind:
			r.byEvent[c.Event] = append(r.byEvent[c.Event], c)
		case Condition:
			r.conditions = append(r.conditions, c)
		case Offline:
			r.offline = append(r.offline, c)
		}
	}
	r.ids = make(map[string]*compiled, len(r.rules))
	for _, c := range r.rules {
		r.ids[c.ID] = c
	}
	for _, p := range sortedKeys(rs.Patients) {
		for _, id := range sortedKeys(rs.Patients[p]) {
			c, ok := r.ids[id]
			if !ok {
				errs = append(errs, ruleErr(id, "patients."+p, "override of a rule the set does not have"))
				continue
			}
			oc, err := override(cat, c, rs.Patients[p][id])
			if err != nil {
				errs = append(errs, fmt.Errorf("patient %s: %w", p, err))
				continue
			}
			if r.overrides == nil {
				r.overrides = map[string]map[int]*compiled{}
			}
			if r.overrides[p] == nil {
				r.overrides[p] = map[int]*compiled{}
			}
			r.overrides[p][c.index] = oc
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func compileRule(cc *compiler, cat *codes.Catalog, rule Rule) (*compiled, error) {
	id := rule.ID
	c := &compiled{Rule: rule}
	if c.Category == "" {
		c.Category = Physiological
		if c.Kind == Offline {
			c.Category = Technical
		}
	}
	if c.Category != Physiological && c.Category != Technical {
		return nil, ruleErr(id, "category", "must be physiological or technical, got %q", c.Category)
	}
	if c.Quality && c.Category != Technical {
		return nil, ruleErr(id, "quality", "a signal-quality rule must be technical")
	}
	if c.Quality {
		// Suppression applies to the device whose signal is poor, so quality is per device.
		c.PerDevice = true
	}
	if c.Command != nil && (c.Command.Name == "" || c.Command.Target == "") {
		return nil, ruleErr(id, "command", "needs a name and a target device kind")
	}
	notFor := func(field string, set bool) error {
		if set {
			return ruleErr(id, field, "does not apply to a %s rule", c.Kind)
		}
		return nil
	}
	var err error
	switch c.Kind {
	case Threshold:
		if err := errors.Join(notFor("event", c.Event != ""), notFor("when", c.When != ""), notFor("clear", c.Clear != ""),
			notFor("levels", len(c.Levels) > 0), notFor("after", c.After != 0), notFor("priority", c.Priority != 0)); err != nil {
			return nil, err
		}
		code, ok := cat.Lookup(c.Code)
		if !ok {
			return nil, ruleErr(id, "code", "unknown code %q", c.Code)
		}
		if code.Kind == codes.Waveform || code.Kind == codes.Panel {
			return nil, ruleErr(id, "code", "%s (%s) is a %s: thresholds apply to single values", code.Display, code.ID, code.Kind)
		}
		c.Code = code.ID
		if err := checkThreshold(id, c.Below, c.Above, c.Hysteresis, code); err != nil {
			return nil, err
		}
	case EventKind:
		if err := errors.Join(notFor("code", c.Code != ""), notFor("below", len(c.Below) > 0), notFor("above", len(c.Above) > 0),
			notFor("levels", len(c.Levels) > 0), notFor("after", c.After != 0)); err != nil {
			return nil, err
		}
		if c.Event == "" {
			return nil, ruleErr(id, "event", "missing: which event kind the rule matches")
		}
		if c.Priority == 0 {
			return nil, ruleErr(id, "priority", "missing")
		}
		if c.When != "" {
			if c.when, err = cc.compileExpr(id, "when", c.When); err != nil {
				return nil, err
			}
		}
		if c.Clear != "" {
			if c.clear, err = cc.compileExpr(id, "clear", c.Clear); err != nil {
				return nil, err
			}
		}
		if c.Hold == 0 {
			c.Hold = Duration(DefaultHold)
		}
	case Condition:
		if err := errors.Join(notFor("code", c.Code != ""), notFor("event", c.Event != ""), notFor("when", c.When != ""),
			notFor("after", c.After != 0), notFor("priority", c.Priority != 0)); err != nil {
			return nil, err
		}
		if len(c.Levels) == 0 {
			return nil, ruleErr(id, "levels", "missing: at least one {when, priority}")
		}
		for i, l := range c.Levels {
			if l.Priority < Low || l.Priority > High {
				return nil, ruleErr(id, fmt.Sprintf("levels[%d].priority", i), "must be low, medium or high")
			}
			p, err := cc.compileExpr(id, fmt.Sprintf("levels[%d].when", i), l.When)
			if err != nil {
				return nil, err
			}
			c.levels = append(c.levels, p)
		}
		if c.ClearWhen != "" {
			if c.clearWhen, err = cc.compileExpr(id, "clear_when", c.ClearWhen); err != nil {
				return nil, err
			}
		}
	case Offline:
		if err := errors.Join(notFor("code", c.Code != ""), notFor("event", c.Event != ""),
			notFor("levels", len(c.Levels) > 0), notFor("when", c.When != "")); err != nil {
			return nil, err
		}
		if c.After < Duration(10*time.Second) {
			return nil, ruleErr(id, "after", "must be at least 10s, got %v", c.After.D())
		}
		if c.Priority == 0 {
			c.Priority = Low
		}
		c.PerDevice = true
	default:
		return nil, ruleErr(id, "kind", "must be threshold, event, condition or offline, got %q", c.Kind)
	}
	if c.Priority != 0 && (c.Priority < Low || c.Priority > High) {
		return nil, ruleErr(id, "priority", "must be low, medium or high")
	}
	return c, nil
}

func checkThreshold(id string, below, above []Band, hyst float64, code codes.Code) error {
	if len(below)+len(above) == 0 {
		return ruleErr(id, "below/above", "a threshold rule needs at least one band")
	}
	if hyst < 0 || math.IsNaN(hyst) {
		return ruleErr(id, "hysteresis", "must not be negative")
	}
	if err := checkBands(id, "below", below, true, code.Min, code.Max); err != nil {
		return err
	}
	if err := checkBands(id, "above", above, false, code.Min, code.Max); err != nil {
		return err
	}
	if len(below) > 0 && len(above) > 0 && below[0].Limit+hyst >= above[0].Limit-hyst {
		return ruleErr(id, "below/above", "low limit %g and high limit %g overlap (hysteresis %g)", below[0].Limit, above[0].Limit, hyst)
	}
	return nil
}

// override applies a patient's override to a rule, validated as the rule is.
func override(cat *codes.Catalog, c *compiled, o Override) (*compiled, error) {
	oc := *c
	if o.Enabled != nil {
		oc.Enabled = o.Enabled
	}
	if o.Delay != nil {
		oc.Delay = *o.Delay
	}
	if o.Below != nil || o.Above != nil || o.Hysteresis != nil {
		if c.Kind != Threshold {
			return nil, ruleErr(c.ID, "override", "limits apply to threshold rules only")
		}
		if o.Below != nil {
			oc.Below = o.Below
		}
		if o.Above != nil {
			oc.Above = o.Above
		}
		if o.Hysteresis != nil {
			oc.Hysteresis = *o.Hysteresis
		}
		code, _ := cat.ByID(c.Code)
		if err := checkThreshold(c.ID, oc.Below, oc.Above, oc.Hysteresis, code); err != nil {
			return nil, err
		}
	}
	if o.Priority != nil {
		if c.Kind != EventKind && c.Kind != Offline {
			return nil, ruleErr(c.ID, "override", "a priority applies to event and offline rules only")
		}
		if *o.Priority < Low || *o.Priority > High {
			return nil, ruleErr(c.ID, "override.priority", "must be low, medium or high")
		}
		oc.Priority = *o.Priority
	}
	if o.After != nil {
		if c.Kind != Offline {
			return nil, ruleErr(c.ID, "override", "after applies to offline rules only")
		}
		oc.After = *o.After
	}
	return &oc, nil
}

// costString writes a cost estimate, "unbounded" for one CEL cannot bound (a comprehension
// over data of unknown size).
func costString(c uint64) string {
	if c == math.MaxUint64 {
		return "an unbounded cost"
	}
	return fmt.Sprint(c)
}

// sizes tells CEL's cost estimator how large what rules read can be: vitals has at most one
// entry per catalog code, news2 a handful, an event's data a few dozen fields of bounded
// size, and identifiers are at most iomt.MaxNameLen bytes. Without these bounds any
// comprehension would be estimated unbounded.
type sizes struct {
	vitals uint64
}

const (
	maxEventFields = 64
	maxEventValue  = 1024
)

func (z sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	name := cost.RangedSizeEstimate(0, iomt.MaxNameLen)
	var e cost.SizeEstimate
	switch {
	case len(path) == 1 && path[0] == "vitals":
		e = cost.MapSizeEstimate(cost.RangedSizeEstimate(0, z.vitals), name, cost.FixedSizeEstimate(1))
	case len(path) == 1 && path[0] == "news2":
		e = cost.MapSizeEstimate(cost.RangedSizeEstimate(0, 8), cost.RangedSizeEstimate(0, 16), cost.RangedSizeEstimate(0, 16))
	case len(path) == 1 && path[0] == "event":
		v := cost.RangedSizeEstimate(0, maxEventValue)
		e = cost.MapSizeEstimate(cost.RangedSizeEstimate(0, maxEventFields), cost.RangedSizeEstimate(0, 64), cost.ListSizeEstimate(v, v))
	case path[0] == "event" || path[0] == "news2":
		e = cost.RangedSizeEstimate(0, maxEventValue)
	case path[0] == "vitals" || path[0] == "patient" || path[0] == "device" || path[0] == "kind":
		e = name
	default:
		return nil
	}
	return &e
}

func (sizes) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// checkRuleText refuses control characters and over-long text in what a rule names (its ID,
// event, command) or says (its message): they end up in logs, alarms and notifications.
func checkRuleText(r Rule) error {
	type text struct {
		field, v string
		max      int
	}
	fields := []text{{"id", r.ID, iomt.MaxNameLen}, {"event", r.Event, iomt.MaxNameLen}, {"message", r.Message, iomt.MaxTextLen}}
	if r.Command != nil {
		fields = append(fields, text{"command.name", r.Command.Name, iomt.MaxNameLen}, text{"command.target", r.Command.Target, iomt.MaxNameLen})
	}
	for _, f := range fields {
		var te *iomt.TextError
		if err := iomt.CheckText(f.field, f.v, f.max); errors.As(err, &te) {
			id := r.ID
			if f.field == "id" {
				id = strconv.QuoteToASCII(limit(id, 40))
			}
			return &RuleError{Rule: id, Field: f.field, Err: errors.New(te.Reason)}
		}
	}
	return nil
}

// limit cuts s to at most n bytes (at a rune boundary), with "…" when it was cut.
func limit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
