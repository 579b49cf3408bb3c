package alarm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iomt/iomt"
)

// Channel is how a delivery travels.
type Channel string

// Channels.
const (
	Dashboard Channel = "dashboard" // the live dashboard of the team
	Webhook   Channel = "webhook"   // an HTTP POST, signed
	Email     Channel = "email"
	DeviceCmd Channel = "device" // a command on the device's .../cmd topic
)

// Roles of team members that policies escalate through. Other role names are allowed.
const (
	Nurse       = "nurse"
	ChargeNurse = "charge-nurse"
	Physician   = "physician"
)

// Contact is one way to reach a member.
type Contact struct {
	Channel Channel `yaml:"channel" json:"channel"`
	Address string  `yaml:"address,omitempty" json:"address,omitempty"` // e-mail address or webhook URL; empty for dashboard
}

// Member is a person of a care team.
type Member struct {
	ID       string    `yaml:"id" json:"id"`
	Name     string    `yaml:"name,omitempty" json:"name,omitempty"`
	Role     string    `yaml:"role" json:"role"`
	Contacts []Contact `yaml:"contacts" json:"contacts"`
}

// Shift is a recurring period of duty: who holds which role from From to To (local "HH:MM";
// To at or before From runs past midnight) on Days (mon…sun of the shift's start; empty: every
// day).
type Shift struct {
	Days   []string            `yaml:"days,omitempty" json:"days,omitempty"`
	From   string              `yaml:"from" json:"from"`
	To     string              `yaml:"to" json:"to"`
	Assign map[string][]string `yaml:"assign" json:"assign"` // role → member IDs
	from   int                 // minutes since midnight
	to     int
	days   [7]bool
}

// Roster says who is on call when, in a time zone.
type Roster struct {
	TimeZone string  `yaml:"tz" json:"tz"` // IANA, e.g. Europe/London
	Shifts   []Shift `yaml:"shifts" json:"shifts"`
	loc      *time.Location
}

// Tier is one step of an escalation policy: whom to notify and how long they have to
// acknowledge before the next tier is notified.
type Tier struct {
	Roles []string `yaml:"roles" json:"roles"`
	After Duration `yaml:"after,omitempty" json:"after,omitempty"` // 0 on the last tier
}

// Policy is an ordered list of tiers.
type Policy struct {
	ID    string `yaml:"id" json:"id"`
	Tiers []Tier `yaml:"tiers" json:"tiers"`
}

// Team is a care team: its members, roster, patients and which policy each priority follows.
type Team struct {
	ID       string   `yaml:"id" json:"id"`
	Members  []Member `yaml:"members" json:"members"`
	Roster   *Roster  `yaml:"roster,omitempty" json:"roster,omitempty"` // nil: every member is on duty
	Patients []string `yaml:"patients,omitempty" json:"patients,omitempty"`
	// Escalation maps a priority (low, medium, high) to a policy ID; a priority without one
	// notifies the dashboard only.
	Escalation map[string]string `yaml:"escalation" json:"escalation"`
	// Hooks are machine endpoints (webhook URLs) told of every routed alarm of the team.
	Hooks []string `yaml:"hooks,omitempty" json:"hooks,omitempty"`
}

// RoutingConfig is the routing document: teams and policies. DefaultTeam takes patients no
// team lists.
type RoutingConfig struct {
	Teams       []Team   `yaml:"teams" json:"teams"`
	Policies    []Policy `yaml:"policies" json:"policies"`
	DefaultTeam string   `yaml:"default_team,omitempty" json:"default_team,omitempty"`
}

// ParseRouting reads a routing document (YAML or JSON); NewRouter validates it.
func ParseRouting(r io.Reader) (RoutingConfig, error) {
	var c RoutingConfig
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("alarm: routing: %w: %w", iomt.ErrInvalid, err)
	}
	return c, nil
}

// Command is what a device is asked to do.
type Command struct {
	ID      string         `json:"id"` // idempotency key; the device acknowledges it by ID
	Name    string         `json:"name"`
	Args    map[string]any `json:"args,omitempty"`
	Alarm   string         `json:"alarm"`
	Patient string         `json:"patient"`
	Target  string         `json:"target"`           // device kind, e.g. bp-monitor
	Device  string         `json:"device,omitempty"` // filled in by whoever knows the patient's devices
}

// Delivery is one notification to send. ID is stable: a retry of the same delivery carries
// the same ID, so receivers de-duplicate on it.
type Delivery struct {
	ID      string     `json:"id"`
	Alarm   string     `json:"alarm"`
	Reason  ChangeKind `json:"reason"`
	Channel Channel    `json:"channel"`
	Address string     `json:"address,omitempty"`
	Team    string     `json:"team,omitempty"`
	Member  string     `json:"member,omitempty"`
	Role    string     `json:"role,omitempty"`
	Tier    int        `json:"tier"`
	Command *Command   `json:"command,omitempty"`
}

func deliveryID(a *Alarm, why ChangeKind, parts ...string) string {
	h := sha256.New()
	// The transition count makes each routing event distinct while a retry stays the same.
	for _, s := range append([]string{a.ID, string(why), strconv.Itoa(a.Level), strconv.Itoa(len(a.Transitions))}, parts...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "dl_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func commandDelivery(a *Alarm, spec *CommandSpec, why ChangeKind) Delivery {
	id := deliveryID(a, why, "cmd", spec.Name, spec.Target)
	return Delivery{ID: id, Alarm: a.ID, Reason: why, Channel: DeviceCmd, Tier: a.Level,
		Command: &Command{ID: id, Name: spec.Name, Args: spec.Args, Alarm: a.ID, Patient: a.Patient, Target: spec.Target}}
}

// Router routes alarms to care teams by roster and escalation policy. It is immutable.
type Router struct {
	teams    map[string]*Team
	byPat    map[string]*Team
	policies map[string]*Policy
	def      *Team
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("time of day %q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// NewRouter validates a routing document.
func NewRouter(c RoutingConfig) (*Router, error) {
	r := &Router{teams: map[string]*Team{}, byPat: map[string]*Team{}, policies: map[string]*Policy{}}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("alarm: routing: "+format, a...)) }
	for i := range c.Policies {
		p := &c.Policies[i]
		if p.ID == "" || r.policies[p.ID] != nil {
			bad("policy #%d: missing or repeated id %q", i+1, p.ID)
			continue
		}
		if len(p.Tiers) == 0 {
			bad("policy %s: no tiers", p.ID)
		}
		for j, t := range p.Tiers {
			if len(t.Roles) == 0 {
				bad("policy %s: tier %d: no roles", p.ID, j+1)
			}
			if j < len(p.Tiers)-1 && t.After.D() <= 0 {
				bad("policy %s: tier %d: after must be positive (how long before tier %d)", p.ID, j+1, j+2)
			}
		}
		r.policies[p.ID] = p
	}
	for i := range c.Teams {
		t := &c.Teams[i]
		if t.ID == "" || r.teams[t.ID] != nil {
			bad("team #%d: missing or repeated id %q", i+1, t.ID)
			continue
		}
		r.teams[t.ID] = t
		members := map[string]bool{}
		for _, m := range t.Members {
			if m.ID == "" || m.Role == "" {
				bad("team %s: a member needs an id and a role", t.ID)
			}
			members[m.ID] = true
			for _, ct := range m.Contacts {
				switch ct.Channel {
				case Dashboard:
				case Email:
					if !strings.Contains(ct.Address, "@") {
						bad("team %s: member %s: e-mail address %q", t.ID, m.ID, ct.Address)
					}
				case Webhook:
					if !strings.HasPrefix(ct.Address, "https://") && !strings.HasPrefix(ct.Address, "http://") {
						bad("team %s: member %s: webhook URL %q", t.ID, m.ID, ct.Address)
					}
				default:
					bad("team %s: member %s: unknown channel %q", t.ID, m.ID, ct.Channel)
				}
			}
		}
		for pr, pid := range t.Escalation {
			var p Priority
			if err := p.UnmarshalText([]byte(pr)); err != nil {
				bad("team %s: escalation: %v", t.ID, err)
			}
			if r.policies[pid] == nil {
				bad("team %s: escalation %s: unknown policy %q", t.ID, pr, pid)
			}
		}
		for _, p := range t.Patients {
			if o := r.byPat[p]; o != nil {
				bad("patient %s is in teams %s and %s", p, o.ID, t.ID)
			}
			r.byPat[p] = t
		}
		if t.Roster != nil {
			loc, err := time.LoadLocation(t.Roster.TimeZone)
			if err != nil || t.Roster.TimeZone == "" {
				bad("team %s: roster: time zone %q: %v", t.ID, t.Roster.TimeZone, err)
				loc = time.UTC
			}
			t.Roster.loc = loc
			for j := range t.Roster.Shifts {
				s := &t.Roster.Shifts[j]
				var err1, err2 error
				s.from, err1 = clockMinutes(s.From)
				s.to, err2 = clockMinutes(s.To)
				if err := errors.Join(err1, err2); err != nil {
					bad("team %s: shift %d: %v", t.ID, j+1, err)
				}
				if len(s.Days) == 0 {
					s.days = [7]bool{true, true, true, true, true, true, true}
				}
				for _, d := range s.Days {
					wd, ok := dayNames[strings.ToLower(d)]
					if !ok {
						bad("team %s: shift %d: day %q is not one of mon…sun", t.ID, j+1, d)
					}
					s.days[wd] = true
				}
				for role, ids := range s.Assign {
					for _, id := range ids {
						if !members[id] {
							bad("team %s: shift %d: %s %q is not a member", t.ID, j+1, role, id)
						}
					}
				}
			}
		}
	}
	if c.DefaultTeam != "" {
		if r.def = r.teams[c.DefaultTeam]; r.def == nil {
			bad("default team %q does not exist", c.DefaultTeam)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", iomt.ErrInvalid, err)
	}
	return r, nil
}

// Team returns the team caring for the patient.
func (r *Router) Team(patient string) (*Team, bool) {
	if t := r.byPat[patient]; t != nil {
		return t, true
	}
	return r.def, r.def != nil
}

func (r *Router) policy(t *Team, p Priority) *Policy {
	return r.policies[t.Escalation[p.String()]]
}

// OnDuty returns the members of the team holding role at now, by the roster (every member
// with the role if the team has no roster).
func (t *Team) OnDuty(role string, now time.Time) []Member {
	var ids []string
	if t.Roster != nil {
		local := now.In(t.Roster.loc)
		min := local.Hour()*60 + local.Minute()
		today, yesterday := local.Weekday(), (local.Weekday()+6)%7
		for _, s := range t.Roster.Shifts {
			overnight := s.to <= s.from
			on := s.days[today] && min >= s.from && (overnight || min < s.to) ||
				overnight && s.days[yesterday] && min < s.to
			if on {
				ids = append(ids, s.Assign[role]...)
			}
		}
	}
	var out []Member
	for _, m := range t.Members {
		if t.Roster == nil && m.Role == role || t.Roster != nil && slices.Contains(ids, m.ID) {
			out = append(out, m)
		}
	}
	return out
}

// Route returns the deliveries for the alarm at its current level: the team's dashboard, the
// on-duty members of the tier's roles on each of their contacts, and the team's hooks.
func (r *Router) Route(a *Alarm, why ChangeKind, now time.Time) []Delivery {
	t, ok := r.Team(a.Patient)
	if !ok {
		return nil
	}
	out := []Delivery{{ID: deliveryID(a, why, "dashboard", t.ID), Alarm: a.ID, Reason: why, Channel: Dashboard, Team: t.ID, Tier: a.Level}}
	if p := r.policy(t, a.Priority); p != nil {
		tier := p.Tiers[min(a.Level, len(p.Tiers)-1)]
		for _, role := range tier.Roles {
			for _, m := range t.OnDuty(role, now) {
				for _, c := range m.Contacts {
					if c.Channel == Dashboard {
						continue // the team's dashboard delivery covers it
					}
					out = append(out, Delivery{ID: deliveryID(a, why, string(c.Channel), c.Address, m.ID), Alarm: a.ID, Reason: why,
						Channel: c.Channel, Address: c.Address, Team: t.ID, Member: m.ID, Role: role, Tier: a.Level})
				}
			}
		}
	}
	for _, h := range t.Hooks {
		out = append(out, Delivery{ID: deliveryID(a, why, "hook", h), Alarm: a.ID, Reason: why, Channel: Webhook, Address: h, Team: t.ID, Tier: a.Level})
	}
	return out
}

// Escalation is how long the alarm may wait at its level before the next tier.
func (r *Router) Escalation(a *Alarm) (time.Duration, bool) {
	t, ok := r.Team(a.Patient)
	if !ok {
		return 0, false
	}
	p := r.policy(t, a.Priority)
	if p == nil || a.Level >= len(p.Tiers)-1 {
		return 0, false
	}
	return p.Tiers[a.Level].After.D(), true
}
