package alarm

import (
	"strings"
	"testing"
	"time"
)

const routingDoc = `
default_team: ward-7
policies:
  - id: urgent
    tiers:
      - {roles: [nurse], after: 2m}
      - {roles: [charge-nurse], after: 3m}
      - {roles: [physician]}
  - id: routine
    tiers:
      - {roles: [nurse]}
teams:
  - id: ward-7
    escalation: {high: urgent, medium: urgent, low: routine}
    hooks: [https://ehr.example/alarms]
    members:
      - {id: ann, role: nurse, contacts: [{channel: email, address: ann@example.org}, {channel: dashboard}]}
      - {id: ned, role: nurse, contacts: [{channel: email, address: ned@example.org}]}
      - {id: cat, role: charge-nurse, contacts: [{channel: webhook, address: https://pager.example/cat}]}
      - {id: phil, role: physician, contacts: [{channel: email, address: phil@example.org}]}
    roster:
      tz: Europe/London
      shifts:
        - {days: [mon, tue, wed, thu, fri, sat, sun], from: "07:00", to: "19:00", assign: {nurse: [ann], charge-nurse: [cat], physician: [phil]}}
        - {from: "19:00", to: "07:00", assign: {nurse: [ned], charge-nurse: [cat], physician: [phil]}}
`

func testRouter(t *testing.T) *Router {
	t.Helper()
	c, err := ParseRouting(strings.NewReader(routingDoc))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func recipients(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		if d.Member != "" {
			out = append(out, d.Member+"/"+string(d.Channel))
		}
	}
	return out
}

func TestRosterByTimeOfDay(t *testing.T) {
	r := testRouter(t)
	team, _ := r.Team("anyone")
	for _, tc := range []struct {
		at   string
		want string
	}{
		{"2026-11-24T10:00:00Z", "ann"}, // London is on UTC in November
		{"2026-11-24T19:30:00Z", "ned"}, // night shift, same day
		{"2026-11-25T03:00:00Z", "ned"}, // night shift, after midnight
		{"2026-07-01T06:30:00Z", "ann"}, // 07:30 BST
		{"2026-07-01T05:30:00Z", "ned"}, // 06:30 BST
	} {
		at, _ := time.Parse(time.RFC3339, tc.at)
		got := team.OnDuty(Nurse, at)
		if len(got) != 1 || got[0].ID != tc.want {
			t.Errorf("%s: %v, want %s", tc.at, got, tc.want)
		}
	}
}

func TestRoutingRefusals(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"policies: [{id: p, tiers: [{roles: [nurse]}, {roles: [physician]}]}]\nteams: []", "tier 1: after must be positive"},
		{"teams: [{id: t, escalation: {high: nope}, members: []}]", `unknown policy "nope"`},
		{"teams: [{id: t, members: [{id: a, role: nurse, contacts: [{channel: pigeon}]}]}]", `unknown channel "pigeon"`},
		{"teams: [{id: t, members: [], roster: {tz: Mars/Olympus, shifts: []}}]", "time zone"},
		{"teams: [{id: t, members: [], roster: {tz: UTC, shifts: [{from: '7am', to: '19:00'}]}}]", `time of day "7am"`},
		{"teams: [{id: t, members: [], roster: {tz: UTC, shifts: [{from: '07:00', to: '19:00', assign: {nurse: [bob]}}]}}]", `nurse "bob" is not a member`},
	} {
		c, err := ParseRouting(strings.NewReader(tc.doc))
		if err == nil {
			_, err = NewRouter(c)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// An unacknowledged alarm escalates on schedule, tier by tier, and stops when acknowledged.
func TestEscalationStopsAtAcknowledge(t *testing.T) {
	c := newClock() // 08:00 UTC, day shift
	e := newEngine(t, c, Config{Router: testRouter(t)})
	chs := feed(e, c, "p", "ox", spo2, 80, 20*time.Second)
	var raised Change
	for _, ch := range chs {
		if ch.Kind == Raised {
			raised = ch
		}
	}
	if got := recipients(raised.Deliveries); len(got) != 1 || got[0] != "ann/email" {
		t.Fatalf("raised: %v", got)
	}
	if raised.Deliveries[0].Channel != Dashboard || raised.Deliveries[len(raised.Deliveries)-1].Address != "https://ehr.example/alarms" {
		t.Errorf("dashboard and hook deliveries: %+v", raised.Deliveries)
	}
	id := raised.Alarm.ID
	t1 := raised.Alarm.Raised
	var esc []Change
	tick := func(d time.Duration) {
		for end := c.now.Add(d); c.now.Before(end); {
			c.Add(time.Second)
			e.Observe(batch("p", "ox", c.now, obs(spo2, 80)))
			for _, ch := range e.Tick(c.now) {
				if ch.Kind == Escalated {
					esc = append(esc, ch)
				}
			}
		}
	}
	tick(t1.Add(2*time.Minute).Sub(c.now) - time.Second)
	if len(esc) != 0 {
		t.Fatalf("escalated early: %v", kinds(esc))
	}
	tick(time.Second)
	if len(esc) != 1 || esc[0].Alarm.Level != 1 || !c.now.Equal(t1.Add(2*time.Minute)) {
		t.Fatalf("after 2m: %v", kinds(esc))
	}
	if got := recipients(esc[0].Deliveries); len(got) != 1 || got[0] != "cat/webhook" {
		t.Errorf("tier 2: %v", got)
	}
	tick(3 * time.Minute)
	if len(esc) != 2 || esc[1].Alarm.Level != 2 {
		t.Fatalf("after 5m: %v", kinds(esc))
	}
	if got := recipients(esc[1].Deliveries); len(got) != 1 || got[0] != "phil/email" {
		t.Errorf("tier 3: %v", got)
	}
	if !esc[1].Alarm.NextEscalation.IsZero() {
		t.Errorf("last tier still has a next escalation at %v", esc[1].Alarm.NextEscalation)
	}
	// A fresh alarm, acknowledged after 1 minute, never escalates.
	c.Add(time.Hour)
	if _, err := e.Acknowledge(id, "phil", "at the bedside"); err != nil {
		t.Fatal(err)
	}
	esc = nil
	feed(e, c, "q", "ox-q", spo2, 80, 20*time.Second)
	q := e.Alarms(Filter{Patient: "q"})[0]
	tick(time.Minute)
	if _, err := e.Acknowledge(q.ID, "ann", ""); err != nil {
		t.Fatal(err)
	}
	tick(10 * time.Minute)
	if len(esc) != 0 {
		t.Errorf("escalated after acknowledgement: %v", kinds(esc))
	}
}

func TestSilenceAndSnoozeExpiry(t *testing.T) {
	c := newClock()
	e := newEngine(t, c, Config{Router: testRouter(t)})
	feed(e, c, "p", "ox", spo2, 80, 20*time.Second)
	a := e.Alarms(Filter{Patient: "p"})[0]
	chs, err := e.Silence(Silence{Scope: Scope{Patient: "p"}, Who: "ann", Why: "repositioning the probe", Until: c.now.Add(5 * time.Minute)})
	if err != nil || len(chs) != 1 || chs[0].Kind != SilencedBy || !chs[0].Alarm.Silenced(c.now) {
		t.Fatalf("silence: %v %v", kinds(chs), err)
	}
	// While silenced: no escalation, and a new alarm in scope is raised silenced, undelivered.
	var during []Change
	for range 4 * 60 {
		c.Add(time.Second)
		during = append(during, e.Observe(batch("p", "ecg", c.now, obs(hr, 170)))...)
		during = append(during, e.Tick(c.now)...)
	}
	for _, ch := range during {
		people := 0
		for _, d := range ch.Deliveries {
			if d.Channel != DeviceCmd { // machines still act: a silence is for people
				people++
			}
		}
		if ch.Kind == Escalated || people > 0 {
			t.Errorf("during silence: %s %s with %d deliveries", ch.Kind, ch.Alarm.Rule, len(ch.Deliveries))
		}
	}
	if got := count(during, Raised); got["hr-high"] != 1 {
		t.Fatalf("hr alarm during silence: %v", got)
	}
	c.Add(time.Minute)
	chs = e.Tick(c.now)
	if got := count(chs, SilenceExpired); got["spo2-low"] != 1 || got["hr-high"] != 1 {
		t.Fatalf("expiry: %v", kinds(chs))
	}
	for _, ch := range chs {
		if ch.Alarm.Rule != "spo2-low" && ch.Alarm.Rule != "hr-high" {
			continue
		}
		if got := recipients(ch.Deliveries); len(got) != 1 || got[0] != "ann/email" {
			t.Errorf("%s re-notified %v", ch.Alarm.Rule, got)
		}
		if ch.Alarm.NextEscalation.IsZero() {
			t.Errorf("%s: escalation not re-armed", ch.Alarm.Rule)
		}
	}
	got, _ := e.Alarm(a.ID)
	var silenced bool
	for _, tr := range got.Transitions {
		silenced = silenced || tr.Who == "ann" && strings.Contains(tr.Why, "repositioning the probe")
	}
	if !silenced {
		t.Errorf("silence not recorded: %+v", got.Transitions)
	}
}

func TestDeliveryIDsStableAndDistinct(t *testing.T) {
	r := testRouter(t)
	a := &Alarm{ID: "al_1", Patient: "p", Priority: High, Transitions: make([]Transition, 1)}
	d1 := r.Route(a, Raised, t0)
	d2 := r.Route(a, Raised, t0)
	if d1[1].ID != d2[1].ID {
		t.Error("same routing event, different delivery IDs")
	}
	a.Transitions = append(a.Transitions, Transition{})
	if d3 := r.Route(a, PriorityRaised, t0); d3[1].ID == d1[1].ID {
		t.Error("new routing event reuses a delivery ID")
	}
}
