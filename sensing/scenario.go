package sensing

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is a patient's story: who they are, what they wear and what happens to them when.
// The file format is documented in README.md. A Scenario is a plain value: a simulator may
// change it (say, drop the pleth waveform by setting a device's Rate to 0) before NewPatient.
type Scenario struct {
	Name        string
	Description string
	// StartClock is the time of day (since midnight) the story is written to start at, or -1
	// when it does not matter; see SuggestedStart.
	StartClock time.Duration
	Duration   time.Duration // how long the story lasts; the patient stays in the last state after
	Diabetes   string        // "none" or "type1"
	// InsulinSensitivity multiplies the glucose model's insulin sensitivity (1 = typical).
	InsulinSensitivity float64
	Baseline           map[string]float64 // initial values of quantities (see Quantities)
	Devices            []DeviceSpec
	Timeline           []Event // sorted by At
}

// DeviceSpec describes one device the patient wears.
type DeviceSpec struct {
	Kind string
	// Rate is the waveform sampling rate in Hz: ECG for an ECG patch (default 250), pleth for
	// a pulse oximeter (default 0: no pleth). Other kinds ignore it.
	Rate     float64
	Interval time.Duration // between messages (or measurements); 0 for a glucometer = on demand only
	First    time.Duration // delay of the first message; default a seeded random phase within min(Interval, 1m)
	Battery  float64       // percent at start (default 100)
	Drain    float64       // percent per hour
	DriftPPM float64       // clock drift, parts per million (positive: the device clock runs fast)
	Offset   time.Duration // device clock minus true time at start
	Jitter   time.Duration // messages leave up to this much after their scheduled time
	// StoreForward makes the device keep what it measured while offline and send it on
	// reconnection, instead of losing it.
	StoreForward bool
}

// Event is one step of a scenario's timeline. Several actions may share an event.
type Event struct {
	At   time.Duration      // since the start of the scenario
	Over time.Duration      // Set values ramp linearly from their current value over this long
	Set  map[string]float64 // new targets of quantities (see Quantities)
	// Rhythm switches the cardiac rhythm: "sinus" or "af". Sinus tachycardia and bradycardia
	// are sinus at a high or low "hr".
	Rhythm   string
	Meal     float64       // grams of carbohydrate eaten
	Bolus    float64       // units of rapid-acting insulin injected
	Exercise float64       // intensity 0..1 (fraction of reserve), lasting For
	Device   string        // the device a Fault, Battery or Drain applies to
	Fault    string        // "lead-off", "lead-off-rail", "probe-off" or "offline", lasting For (0: for good)
	For      time.Duration // duration of Exercise or Fault
	Battery  *float64      // sets Device's battery level, percent
	Drain    *float64      // sets Device's battery drain, percent per hour
	Measure  string        // asks a device for an on-demand measurement (bp-monitor, glucometer, scale, thermometer)
	Fall     bool          // the patient falls (an activity tracker reports it)
	Note     string        // what happens, for people reading the scenario or watching a demo
}

// Quantity is a physiological or behavioural quantity a scenario sets.
type Quantity struct {
	Name     string
	Unit     string
	Min, Max float64
	Default  float64
	Doc      string
}

// Quantities lists what "baseline" and "set" accept, in documentation order.
func Quantities() []Quantity {
	return []Quantity{
		{"hr", "/min", 20, 250, 72, "heart rate (mean ventricular rate in AF)"},
		{"rr", "/min", 2, 70, 14, "respiratory rate"},
		{"spo2", "%", 50, 100, 97, "oxygen saturation"},
		{"temp", "Cel", 30, 43, 36.9, "core body temperature"},
		{"sbp", "mm[Hg]", 40, 260, 122, "systolic blood pressure"},
		{"dbp", "mm[Hg]", 20, 160, 76, "diastolic blood pressure"},
		{"weight", "kg", 1, 400, 75, "body weight"},
		{"glucose", "mg/dL", 20, 600, 95, "blood glucose (baseline only: afterwards the glucose model drives it)"},
		{"basal", "U/h", 0, 10, 0, "basal insulin infusion (type 1 diabetes)"},
		{"pvc", "/min", 0, 30, 0, "premature ventricular beats per minute"},
		{"pauses", "/h", 0, 1200, 0, "sinus pauses (2–3.5 s) per hour"},
		{"hrv", "1", 0, 5, 1, "heart-rate variability scale (respiratory sinus arrhythmia and LF)"},
		{"noise", "mV", 0, 1, 0.01, "ECG muscle noise, RMS"},
		{"wander", "mV", 0, 2, 0.05, "ECG baseline wander amplitude"},
		{"motion", "/min", 0, 60, 0, "ECG/pleth motion artefacts per minute"},
		{"steps", "/min", 0, 250, 0, "walking cadence"},
		{"perfusion", "1", 0, 5, 1, "pleth pulse amplitude"},
	}
}

func quantity(name string) (Quantity, bool) {
	for _, q := range Quantities() {
		if q.Name == name {
			return q, true
		}
	}
	return Quantity{}, false
}

func quantityNames() string {
	var names []string
	for _, q := range Quantities() {
		names = append(names, q.Name)
	}
	return strings.Join(names, ", ")
}

// Kinds lists the device kinds the simulator has.
func Kinds() []string {
	return []string{ECGPatch, PulseOximeter, BPMonitor, Thermometer, CGM, Glucometer, Scale, ActivityTracker}
}

// onDemand reports whether a device of this kind takes measurements on demand (Measure).
func onDemand(kind string) bool {
	switch kind {
	case BPMonitor, Glucometer, Scale, Thermometer:
		return true
	}
	return false
}

// defaultInterval is each kind's message (or measurement) interval.
func defaultInterval(kind string) time.Duration {
	switch kind {
	case BPMonitor:
		return 15 * time.Minute
	case Thermometer, ActivityTracker:
		return time.Minute
	case CGM:
		return 5 * time.Minute
	case Glucometer:
		return 0
	case Scale:
		return 24 * time.Hour
	}
	return time.Second
}

// SuggestedStart returns the first instant at or after from whose time of day (in from's
// location) is the scenario's StartClock; from itself when the scenario has none.
func (sc Scenario) SuggestedStart(from time.Time) time.Time {
	if sc.StartClock < 0 {
		return from
	}
	y, m, d := from.Date()
	t := time.Date(y, m, d, 0, 0, 0, 0, from.Location()).Add(sc.StartClock)
	if t.Before(from) {
		t = time.Date(y, m, d+1, 0, 0, 0, 0, from.Location()).Add(sc.StartClock)
	}
	return t
}

// Device returns the spec of the device of the given kind, or nil.
func (sc *Scenario) Device(kind string) *DeviceSpec {
	for i := range sc.Devices {
		if sc.Devices[i].Kind == kind {
			return &sc.Devices[i]
		}
	}
	return nil
}

// Clone returns a deep copy, so that changing it leaves sc alone.
func (sc Scenario) Clone() Scenario {
	c := sc
	c.Baseline = maps.Clone(sc.Baseline)
	c.Devices = slices.Clone(sc.Devices)
	c.Timeline = slices.Clone(sc.Timeline)
	for i := range c.Timeline {
		c.Timeline[i].Set = maps.Clone(c.Timeline[i].Set)
	}
	return c
}

// ---- file format ----

type fileScenario struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	StartClock  string       `yaml:"start_clock"`
	Duration    duration     `yaml:"duration"`
	Patient     filePatient  `yaml:"patient"`
	Baseline    values       `yaml:"baseline"`
	Devices     []fileDevice `yaml:"devices"`
	Timeline    []fileEvent  `yaml:"timeline"`
}

type filePatient struct {
	Diabetes           string   `yaml:"diabetes"`
	InsulinSensitivity *float64 `yaml:"insulin_sensitivity"`
}

type fileDevice struct {
	Kind         string    `yaml:"kind"`
	Rate         *float64  `yaml:"rate"`
	Interval     *duration `yaml:"interval"`
	First        *duration `yaml:"first"`
	Battery      *float64  `yaml:"battery"`
	Drain        float64   `yaml:"drain"`
	Drift        float64   `yaml:"drift_ppm"`
	Offset       duration  `yaml:"offset"`
	Jitter       duration  `yaml:"jitter"`
	StoreForward bool      `yaml:"store_forward"`
	line         int
}

type fileEvent struct {
	At       *duration `yaml:"at"`
	Over     duration  `yaml:"over"`
	Set      values    `yaml:"set"`
	Rhythm   string    `yaml:"rhythm"`
	Meal     float64   `yaml:"meal"`
	Bolus    float64   `yaml:"bolus"`
	Exercise float64   `yaml:"exercise"`
	Device   string    `yaml:"device"`
	Fault    string    `yaml:"fault"`
	For      duration  `yaml:"for"`
	Battery  *float64  `yaml:"battery"`
	Drain    *float64  `yaml:"drain"`
	Measure  string    `yaml:"measure"`
	Fall     bool      `yaml:"fall"`
	Note     string    `yaml:"note"`
	line     int
}

// strictMapping refuses keys a struct does not have. yaml.v3's KnownFields does not reach
// into custom unmarshalers, so the ones here check for themselves.
func strictMapping(n *yaml.Node, what string, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	known := yamlKeys(v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: %s: unknown field %q (known: %s)", k.Line, what, k.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

// yamlKeys lists the yaml tags of the struct v points to, in field order.
func yamlKeys(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func (d *fileDevice) UnmarshalYAML(n *yaml.Node) error {
	if err := strictMapping(n, "device", d); err != nil {
		return err
	}
	type plain fileDevice
	if err := n.Decode((*plain)(d)); err != nil {
		return err
	}
	d.line = n.Line
	return nil
}

func (e *fileEvent) UnmarshalYAML(n *yaml.Node) error {
	if err := strictMapping(n, "timeline event", e); err != nil {
		return err
	}
	type plain fileEvent
	if err := n.Decode((*plain)(e)); err != nil {
		return err
	}
	e.line = n.Line
	return nil
}

// duration reads Go durations ("90s", "1h30m") and a plain 0.
type duration struct {
	d time.Duration
}

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 90s or 1h30m", n.Line)
	}
	if n.Value == "0" {
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (want a number with a unit: 90s, 15m, 1h30m)", n.Line, n.Value)
	}
	d.d = v
	return nil
}

// values is a map of quantities that remembers each key's line for error messages.
type values struct {
	m     map[string]float64
	lines map[string]int
	line  int
}

func (v *values) UnmarshalYAML(n *yaml.Node) error {
	v.line = n.Line
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of quantity: value", n.Line)
	}
	v.m = map[string]float64{}
	v.lines = map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		var f float64
		if err := val.Decode(&f); err != nil {
			return fmt.Errorf("line %d: %s: want a number, got %q", val.Line, k.Value, val.Value)
		}
		if _, dup := v.m[k.Value]; dup {
			return fmt.Errorf("line %d: %s given twice", k.Line, k.Value)
		}
		v.m[k.Value] = f
		v.lines[k.Value] = k.Line
	}
	return nil
}

func (v values) check(where string) error {
	keys := make([]string, 0, len(v.m))
	for k := range v.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q, ok := quantity(k)
		if !ok {
			return fmt.Errorf("line %d: %s: unknown quantity %q (known: %s)", v.lines[k], where, k, quantityNames())
		}
		if x := v.m[k]; x < q.Min || x > q.Max {
			return fmt.Errorf("line %d: %s: %s %g outside %g..%g %s", v.lines[k], where, k, x, q.Min, q.Max, q.Unit)
		}
	}
	return nil
}

// LoadScenario reads a scenario file (YAML; see README.md). Errors name the line and field.
func LoadScenario(r io.Reader) (Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Scenario{}, fmt.Errorf("sensing: read scenario: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f fileScenario
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return Scenario{}, errors.New("sensing: scenario: empty file")
		}
		return Scenario{}, fmt.Errorf("sensing: scenario: %w", err)
	}
	sc, err := f.scenario()
	if err != nil {
		name := f.Name
		if name == "" {
			name = "scenario"
		}
		return Scenario{}, fmt.Errorf("sensing: %s: %w", name, err)
	}
	return sc, nil
}

func (f *fileScenario) scenario() (Scenario, error) {
	sc := Scenario{
		Name:               f.Name,
		Description:        strings.TrimSpace(f.Description),
		StartClock:         -1,
		Duration:           f.Duration.d,
		Diabetes:           "none",
		InsulinSensitivity: 1,
		Baseline:           map[string]float64{},
	}
	if sc.Name == "" {
		return sc, errors.New("name: missing")
	}
	if f.StartClock != "" {
		t, err := time.Parse("15:04", f.StartClock)
		if err != nil {
			return sc, fmt.Errorf("start_clock: %q is not a time of day such as 21:30", f.StartClock)
		}
		sc.StartClock = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	switch f.Patient.Diabetes {
	case "", "none":
	case "type1":
		sc.Diabetes = "type1"
	default:
		return sc, fmt.Errorf("patient.diabetes: %q is not one of none, type1", f.Patient.Diabetes)
	}
	if s := f.Patient.InsulinSensitivity; s != nil {
		if *s <= 0 || *s > 10 {
			return sc, fmt.Errorf("patient.insulin_sensitivity: %g outside (0, 10]", *s)
		}
		sc.InsulinSensitivity = *s
	}
	if err := f.Baseline.check("baseline"); err != nil {
		return sc, err
	}
	for _, q := range Quantities() {
		sc.Baseline[q.Name] = q.Default
	}
	if sc.Diabetes == "type1" {
		sc.Baseline["glucose"] = 140
		sc.Baseline["basal"] = 0.8
	}
	for k, v := range f.Baseline.m {
		sc.Baseline[k] = v
	}
	if sc.Baseline["dbp"] >= sc.Baseline["sbp"] {
		return sc, fmt.Errorf("line %d: baseline: dbp %g not below sbp %g", f.Baseline.line, sc.Baseline["dbp"], sc.Baseline["sbp"])
	}
	if len(f.Devices) == 0 {
		return sc, errors.New("devices: the patient wears no device")
	}
	for i, d := range f.Devices {
		spec, err := d.spec()
		if err != nil {
			return sc, fmt.Errorf("line %d: devices[%d]: %w", d.line, i, err)
		}
		if sc.Device(spec.Kind) != nil {
			return sc, fmt.Errorf("line %d: devices[%d]: a second %s (one device of each kind)", d.line, i, spec.Kind)
		}
		sc.Devices = append(sc.Devices, spec)
	}
	for i, fe := range f.Timeline {
		ev, err := fe.event(&sc)
		if err != nil {
			return sc, fmt.Errorf("line %d: timeline[%d]: %w", fe.line, i, err)
		}
		sc.Timeline = append(sc.Timeline, ev)
	}
	sort.SliceStable(sc.Timeline, func(i, j int) bool { return sc.Timeline[i].At < sc.Timeline[j].At })
	return sc, nil
}

func (d fileDevice) spec() (DeviceSpec, error) {
	if !slices.Contains(Kinds(), d.Kind) {
		return DeviceSpec{}, fmt.Errorf("kind: %q is not one of %s", d.Kind, strings.Join(Kinds(), ", "))
	}
	s := DeviceSpec{Kind: d.Kind, Interval: defaultInterval(d.Kind), First: -1, Battery: 100, Drain: d.Drain,
		DriftPPM: d.Drift, Offset: d.Offset.d, Jitter: d.Jitter.d, StoreForward: d.StoreForward}
	if d.Kind == ECGPatch {
		s.Rate = 250
	}
	if d.Rate != nil {
		s.Rate = *d.Rate
		if s.Rate < 0 || s.Rate > 2000 {
			return s, fmt.Errorf("rate: %g Hz outside 0..2000", s.Rate)
		}
		if d.Kind == ECGPatch && s.Rate < 50 {
			return s, fmt.Errorf("rate: %g Hz is too low for an ECG (at least 50)", s.Rate)
		}
		if s.Rate > 0 && !wholeMillisPeriod(s.Rate) {
			return s, fmt.Errorf("rate: %g Hz has no whole-millisecond sample period (use 1000/n: 250, 200, 125, 100, 50 ...)", s.Rate)
		}
	}
	if d.Interval != nil {
		s.Interval = d.Interval.d
	}
	if s.Interval < 0 || (s.Interval == 0 && !onDemand(d.Kind)) {
		return s, fmt.Errorf("interval: %v must be positive for a %s", s.Interval, d.Kind)
	}
	if s.Interval > 0 && s.Interval < 100*time.Millisecond {
		return s, fmt.Errorf("interval: %v is shorter than 100ms", s.Interval)
	}
	if d.First != nil {
		if d.First.d < 0 {
			return s, fmt.Errorf("first: %v is negative", d.First.d)
		}
		s.First = d.First.d
	}
	if d.Battery != nil {
		s.Battery = *d.Battery
	}
	if s.Battery < 0 || s.Battery > 100 {
		return s, fmt.Errorf("battery: %g %% outside 0..100", s.Battery)
	}
	if s.Drain < 0 || s.Drain > 1000 {
		return s, fmt.Errorf("drain: %g %%/h outside 0..1000", s.Drain)
	}
	if s.DriftPPM < -10000 || s.DriftPPM > 10000 {
		return s, fmt.Errorf("drift_ppm: %g outside ±10000", s.DriftPPM)
	}
	if s.Jitter < 0 || (s.Interval > 0 && s.Jitter >= s.Interval) {
		return s, fmt.Errorf("jitter: %v must be at least 0 and below the interval", s.Jitter)
	}
	return s, nil
}

func wholeMillisPeriod(hz float64) bool {
	p := 1000 / hz
	return p == float64(int(p))
}

func (fe fileEvent) event(sc *Scenario) (Event, error) {
	if fe.At == nil {
		return Event{}, errors.New("at: missing (when it happens, since the start: 90s, 15m, 1h30m)")
	}
	ev := Event{At: fe.At.d, Over: fe.Over.d, Set: fe.Set.m, Rhythm: fe.Rhythm, Meal: fe.Meal, Bolus: fe.Bolus,
		Exercise: fe.Exercise, Device: fe.Device, Fault: fe.Fault, For: fe.For.d, Battery: fe.Battery, Drain: fe.Drain,
		Measure: fe.Measure, Fall: fe.Fall, Note: fe.Note}
	if ev.At < 0 {
		return ev, fmt.Errorf("at: %v is negative", ev.At)
	}
	if ev.Over < 0 || ev.For < 0 {
		return ev, errors.New("over/for: negative duration")
	}
	if err := fe.Set.check("set"); err != nil {
		return ev, err
	}
	if _, ok := ev.Set["glucose"]; ok {
		return ev, fmt.Errorf("line %d: set: glucose is driven by the glucose model; use meal, bolus, basal or exercise", fe.Set.lines["glucose"])
	}
	if ev.Over > 0 && len(ev.Set) == 0 {
		return ev, errors.New("over: given without set")
	}
	if ev.Rhythm != "" && ev.Rhythm != "sinus" && ev.Rhythm != "af" {
		return ev, fmt.Errorf("rhythm: %q is not one of sinus, af", ev.Rhythm)
	}
	if ev.Meal < 0 || ev.Meal > 500 {
		return ev, fmt.Errorf("meal: %g g outside 0..500", ev.Meal)
	}
	if ev.Bolus < 0 || ev.Bolus > 50 {
		return ev, fmt.Errorf("bolus: %g U outside 0..50", ev.Bolus)
	}
	if ev.Exercise < 0 || ev.Exercise > 1 {
		return ev, fmt.Errorf("exercise: intensity %g outside 0..1", ev.Exercise)
	}
	if ev.Exercise > 0 && ev.For == 0 {
		return ev, errors.New("exercise: needs for (how long)")
	}
	needsDevice := ev.Fault != "" || ev.Battery != nil || ev.Drain != nil
	if needsDevice && ev.Device == "" {
		return ev, errors.New("device: missing (which device the fault or battery change applies to)")
	}
	if ev.Device != "" {
		if !needsDevice {
			return ev, errors.New("device: given without fault, battery or drain")
		}
		if sc.Device(ev.Device) == nil {
			return ev, fmt.Errorf("device: the patient wears no %q (devices: %s)", ev.Device, wornKinds(sc))
		}
	}
	switch ev.Fault {
	case "", "offline":
	case "lead-off", "lead-off-rail":
		if ev.Device != ECGPatch {
			return ev, fmt.Errorf("fault: %s applies to an ecg-patch, not a %s", ev.Fault, ev.Device)
		}
	case "probe-off":
		if ev.Device != PulseOximeter {
			return ev, fmt.Errorf("fault: probe-off applies to a pulse-oximeter, not a %s", ev.Device)
		}
	default:
		return ev, fmt.Errorf("fault: %q is not one of lead-off, lead-off-rail, probe-off, offline", ev.Fault)
	}
	if ev.Battery != nil && (*ev.Battery < 0 || *ev.Battery > 100) {
		return ev, fmt.Errorf("battery: %g %% outside 0..100", *ev.Battery)
	}
	if ev.Drain != nil && (*ev.Drain < 0 || *ev.Drain > 1000) {
		return ev, fmt.Errorf("drain: %g %%/h outside 0..1000", *ev.Drain)
	}
	if ev.Measure != "" {
		if !onDemand(ev.Measure) {
			return ev, fmt.Errorf("measure: %q takes no on-demand measurement (bp-monitor, glucometer, scale, thermometer do)", ev.Measure)
		}
		if sc.Device(ev.Measure) == nil {
			return ev, fmt.Errorf("measure: the patient wears no %q (devices: %s)", ev.Measure, wornKinds(sc))
		}
	}
	if ev.Fall && sc.Device(ActivityTracker) == nil {
		return ev, errors.New("fall: needs an activity-tracker to report it")
	}
	return ev, nil
}

func wornKinds(sc *Scenario) string {
	var k []string
	for _, d := range sc.Devices {
		k = append(k, d.Kind)
	}
	return strings.Join(k, ", ")
}

//go:embed scenarios/*.yaml
var scenarioFiles embed.FS

// Builtin returns the scenarios shipped with iomt, by name, freshly parsed (so callers may
// change them): stable-adult, sepsis, af-onset, t1d-nocturnal-hypo, device-fault and others.
func Builtin() map[string]Scenario {
	out := map[string]Scenario{}
	entries, err := fs.ReadDir(scenarioFiles, "scenarios")
	if err != nil {
		panic(fmt.Sprintf("sensing: embedded scenarios: %v", err)) // the build embeds them; a test covers it
	}
	for _, e := range entries {
		data, err := scenarioFiles.ReadFile(path.Join("scenarios", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("sensing: embedded scenario %s: %v", e.Name(), err))
		}
		sc, err := LoadScenario(bytes.NewReader(data))
		if err != nil {
			panic(fmt.Sprintf("sensing: embedded scenario %s: %v", e.Name(), err))
		}
		out[sc.Name] = sc
	}
	return out
}
