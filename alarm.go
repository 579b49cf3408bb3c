package iomt

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// AlarmPriority is an alarm's urgency (IEC 60601-1-8 high, medium, low). The zero value means
// no alarm condition.
type AlarmPriority int

// Priorities, in increasing urgency.
const (
	PriorityLow AlarmPriority = iota + 1
	PriorityMedium
	PriorityHigh
)

var priorityNames = [...]string{PriorityLow: "low", PriorityMedium: "medium", PriorityHigh: "high"}

func (p AlarmPriority) String() string {
	if p >= PriorityLow && p <= PriorityHigh {
		return priorityNames[p]
	}
	if p == 0 {
		return "none"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText writes the priority's name.
func (p AlarmPriority) MarshalText() ([]byte, error) {
	if p < PriorityLow || p > PriorityHigh {
		return nil, fmt.Errorf("alarm: no such priority %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads low, medium or high.
func (p *AlarmPriority) UnmarshalText(b []byte) error {
	for i, n := range priorityNames {
		if n != "" && n == string(b) {
			*p = AlarmPriority(i)
			return nil
		}
	}
	return fmt.Errorf("alarm: priority must be low, medium or high, got %q", b)
}

// AlarmState is where an alarm is in its lifecycle.
type AlarmState string

// States. An alarm is raised active, may be acknowledged (someone is on it) and ends resolved.
const (
	AlarmActive       AlarmState = "active"
	AlarmAcknowledged AlarmState = "acknowledged"
	AlarmResolved     AlarmState = "resolved"
)

// AlarmCategory separates alarms about the patient from alarms about the equipment.
type AlarmCategory string

// Categories (IEC 60601-1-8 physiological and technical alarm conditions).
const (
	Physiological AlarmCategory = "physiological"
	Technical     AlarmCategory = "technical"
)

// AlarmTransition is one recorded step of an alarm's life. From and To are equal for steps
// that change no state: a priority rise, a silence, an escalation to the next tier.
type AlarmTransition struct {
	From AlarmState `json:"from,omitempty"`
	To   AlarmState `json:"to"`
	Who  string     `json:"who"`
	When time.Time  `json:"when"`
	Why  string     `json:"why"`
}

// Alarm is one alarm condition of one patient (and device, for per-device rules), from the
// moment it was raised until it is resolved. At most one unresolved alarm exists per rule,
// patient and (for per-device rules) device.
type Alarm struct {
	ID          string        `json:"id"` // deterministic: same input, same ID on every node
	Tenant      string        `json:"tenant"`
	Patient     string        `json:"patient"`
	Device      string        `json:"device,omitempty"` // the device whose reading raised it
	Rule        string        `json:"rule"`
	RuleVersion int           `json:"ruleVersion"` // the version of the tenant's rule set
	Category    AlarmCategory `json:"category"`
	Priority    AlarmPriority `json:"priority"`
	State       AlarmState    `json:"state"`
	Latching    bool          `json:"latching,omitempty"`
	// Level is the escalation tier reached: 0 is the first tier of the policy.
	Level int `json:"level"`

	Raised   time.Time `json:"raised"`
	Acked    time.Time `json:"acked,omitzero"`
	Resolved time.Time `json:"resolved,omitzero"`
	// ConditionActive is false once the condition has cleared; a latching alarm then waits
	// for someone to resolve it.
	ConditionActive bool      `json:"conditionActive"`
	Cleared         time.Time `json:"cleared,omitzero"`
	// ConditionSeen is when the condition was last asserted (raised, worsened, returned or
	// repeated), on the patient's clock: a restored event rule's hold counts from it.
	ConditionSeen time.Time `json:"conditionSeen,omitzero"`
	SilencedUntil time.Time `json:"silencedUntil,omitzero"`
	// NextEscalation is when the alarm moves to the next tier if nobody acknowledges it.
	NextEscalation time.Time `json:"nextEscalation,omitzero"`

	Code    string  `json:"code,omitempty"` // the observation code, for threshold rules
	Value   float64 `json:"value"`          // the value that raised it (or last raised its priority)
	Limit   float64 `json:"limit,omitempty"`
	Event   string  `json:"event,omitempty"` // the event kind, for event rules
	Message string  `json:"message"`

	Transitions []AlarmTransition `json:"transitions"`

	// Undelivered names the change (raised, escalated, ...) whose notifications were being
	// sent when this snapshot was stored and are not known to be done: a node restoring the
	// alarm sends them again, under the same delivery IDs.
	Undelivered string `json:"undelivered,omitempty"`
}

// Silenced reports whether the alarm's notifications are paused at now.
func (a *Alarm) Silenced(now time.Time) bool { return now.Before(a.SilencedUntil) }

// Updated is when the alarm last changed: its last transition, or when it was raised.
func (a *Alarm) Updated() time.Time {
	if n := len(a.Transitions); n > 0 {
		return a.Transitions[n-1].When
	}
	return a.Raised
}

// AlarmFilter selects alarms; zero fields do not filter. Results are newest raised first.
type AlarmFilter struct {
	Tenant  string
	Patient string
	// Patients, if not nil, keeps alarms of these patients only (a node restoring the
	// partitions it took over).
	Patients []string
	States   []AlarmState
	Since    time.Time // raised at or after
	Until    time.Time // raised before
	Limit    int       // 0: no limit
}

// AlarmConfig is one version of a tenant's alarm configuration document: its rule set
// (Kind "rules") or its routing (Kind "routing"), as the API received it.
type AlarmConfig struct {
	Tenant  string    `json:"tenant"`
	Kind    string    `json:"kind"`
	Version int       `json:"version"`
	Doc     []byte    `json:"doc"`
	Who     string    `json:"who"`
	Saved   time.Time `json:"saved"`
}

// AlarmSilence pauses the notifications of a patient's alarms (narrowed to one rule and/or
// device when those are set) until Until, including alarms raised while it lasts. It is stored
// so that a restart or a partition handover does not end it early. A silence is identified by
// its tenant, scope and Until (kept to the millisecond): saving it again keeps one.
type AlarmSilence struct {
	Tenant  string    `json:"tenant"`
	Patient string    `json:"patient"`
	Rule    string    `json:"rule,omitempty"`
	Device  string    `json:"device,omitempty"`
	Until   time.Time `json:"until"`
	Who     string    `json:"who"`
	Why     string    `json:"why,omitempty"`
	Created time.Time `json:"created"`
}

// AlarmSilenceFilter selects silences; zero fields do not filter. Results are ordered by
// tenant, patient, rule, device and Until.
type AlarmSilenceFilter struct {
	Tenant string
	// Patients, if not nil, keeps silences of these patients only.
	Patients []string
	// At keeps the silences still in force at At (Until after it).
	At time.Time
}

// AlarmStore keeps alarms, so that they survive restarts and move with their patient's
// partition, and the versions of each tenant's alarm configuration.
type AlarmStore interface {
	// SaveAlarms stores the alarms durably, replacing earlier snapshots with the same ID —
	// but never one with more transitions: a late write of an older snapshot loses.
	SaveAlarms(ctx context.Context, alarms []Alarm) error
	Alarms(ctx context.Context, f AlarmFilter) ([]Alarm, error)
	// Alarm returns one alarm by ID (ErrNotFound if there is none).
	Alarm(ctx context.Context, id string) (Alarm, error)
	// SaveAlarmConfig stores a new version (ErrDuplicate if that tenant, kind and version
	// exist: versions are never overwritten).
	SaveAlarmConfig(ctx context.Context, c AlarmConfig) error
	// AlarmConfigs returns the newest version of every tenant's rules and routing.
	AlarmConfigs(ctx context.Context) ([]AlarmConfig, error)
	// SaveAlarmSilence stores a silence durably (ErrInvalid without tenant, patient, who,
	// until or created). The same save drops the silences that ended before s.Created: expired
	// ones serve no one, and this keeps the table small without a sweeper.
	SaveAlarmSilence(ctx context.Context, s AlarmSilence) error
	AlarmSilences(ctx context.Context, f AlarmSilenceFilter) ([]AlarmSilence, error)
}

// CheckAlarmSilence reports (ErrInvalid) what a stored silence lacks, or which of its texts
// CheckText refuses (the reason may be up to MaxTextLen bytes, the others MaxNameLen).
func CheckAlarmSilence(s AlarmSilence) error {
	if err := checkSilenceText(s); err != nil {
		return err
	}
	switch {
	case s.Tenant == "":
		return fmt.Errorf("%w: alarm silence: tenant is empty", ErrInvalid)
	case s.Patient == "":
		return fmt.Errorf("%w: alarm silence: patient is empty", ErrInvalid)
	case s.Who == "":
		return fmt.Errorf("%w: alarm silence: who is empty", ErrInvalid)
	case s.Until.IsZero():
		return fmt.Errorf("%w: alarm silence: until is not set", ErrInvalid)
	case s.Created.IsZero():
		return fmt.Errorf("%w: alarm silence: created is not set", ErrInvalid)
	}
	return nil
}

func checkSilenceText(s AlarmSilence) error {
	for _, f := range [...]struct{ name, v string }{{"tenant", s.Tenant}, {"patient", s.Patient}, {"rule", s.Rule}, {"device", s.Device}, {"who", s.Who}} {
		if err := CheckText("alarm silence: "+f.name, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	return CheckText("alarm silence: why", s.Why, MaxTextLen)
}
