// Package alarm turns readings and analytics events into alarms that reach the right person or
// machine and escalate until someone acts, after the alarm semantics of IEC 60601-1-8:
// priorities, validation delay, hysteresis, latching, de-duplication, suppression while the
// signal is poor, and priority escalation as a condition worsens.
//
// Rules are data (RuleSet, YAML or JSON, versioned, per tenant, with per-patient overrides);
// conditions that need an expression are written in CEL. The Engine is a pure streaming state
// machine: Observe, Event and Tick return the Changes they caused and do no I/O, start no
// goroutines and read no clock but the one they are given, so a recorded day replays
// identically. A Router maps alarms to Deliveries (care teams, rosters, escalation policies);
// package alarm/notify carries them out (webhook, e-mail, device command).
//
// See README.md for the rule format and the contracts the wiring relies on.
package alarm

import (
	"errors"
	"time"

	"github.com/iomt/iomt"
)

// The domain types live in the root package (stores and the API speak them); these names keep
// the rule and engine code short.
type (
	Priority   = iomt.AlarmPriority
	State      = iomt.AlarmState
	Category   = iomt.AlarmCategory
	Transition = iomt.AlarmTransition
	Alarm      = iomt.Alarm
)

// Priorities, states and categories, as in the root package.
const (
	Low    = iomt.PriorityLow
	Medium = iomt.PriorityMedium
	High   = iomt.PriorityHigh

	Active       = iomt.AlarmActive
	Acknowledged = iomt.AlarmAcknowledged
	Resolved     = iomt.AlarmResolved

	Physiological = iomt.Physiological
	Technical     = iomt.Technical
)

// System is the Who of transitions the engine makes itself (raise, self-clear, escalation).
const System = "system"

// clone copies the alarm so that a Change does not share the transition log with the engine.
func clone(a *Alarm) Alarm {
	c := *a
	c.Transitions = append([]Transition(nil), a.Transitions...)
	return c
}

func record(a *Alarm, to State, who string, when time.Time, why string) {
	a.Transitions = append(a.Transitions, Transition{From: a.State, To: to, Who: who, When: when, Why: why})
	a.State = to
}

// note records a step that changes no state (a priority rise, a silence, an escalation).
func note(a *Alarm, who string, when time.Time, why string) { record(a, a.State, who, when, why) }

// ChangeKind says what happened to an alarm.
type ChangeKind string

// Change kinds.
const (
	Raised          ChangeKind = "raised"
	PriorityRaised  ChangeKind = "priority-raised" // the condition worsened
	Escalated       ChangeKind = "escalated"       // unacknowledged: moved to the next tier
	ConditionClear  ChangeKind = "condition-cleared"
	AcknowledgedBy  ChangeKind = "acknowledged"
	SilencedBy      ChangeKind = "silenced"
	SilenceExpired  ChangeKind = "silence-expired"
	ResolvedChange  ChangeKind = "resolved"
	ConditionReturn ChangeKind = "condition-returned" // a latched alarm's condition came back
)

// Change is one thing that happened to an alarm, with a snapshot of the alarm after it and
// the notifications the router wants sent because of it.
type Change struct {
	Kind       ChangeKind `json:"kind"`
	Alarm      Alarm      `json:"alarm"`
	Deliveries []Delivery `json:"deliveries,omitempty"`
}

// Errors of lifecycle operations; they are wrapped with the alarm and the reason.
var (
	ErrNotFound          = errors.New("alarm: not found")
	ErrInvalidTransition = errors.New("alarm: invalid transition")
)
