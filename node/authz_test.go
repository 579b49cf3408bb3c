package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/policy"
)

// people is a node with a cast: two care teams of one tenant, a patient of each, a patient
// of another tenant, and one principal of every role.
type people struct {
	*env
	// Patients: mine (team A, the principals' team), theirs (team B), foreign (another tenant).
	mine, theirs, foreign string
	alarm                 map[string]string // patient → an alarm of theirs
	creds                 map[string]credential
	users                 map[string]iomt.User
}

// credential is how a principal calls: a bearer token, or a session cookie and its CSRF.
type credential struct {
	bearer, cookie, csrf string
}

func (c credential) apply(req *http.Request) {
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: c.cookie})
		req.Header.Set(api.CSRFHeader, c.csrf)
	}
}

const castPassword = "a long enough password"

func startPeople(t *testing.T) *people {
	t.Helper()
	e := start(t)
	ctx := context.Background()
	p := &people{env: e, alarm: map[string]string{}, creds: map[string]credential{}, users: map[string]iomt.User{}}
	st, id := e.n.Store(), e.n.Identity()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, pt := range []iomt.Patient{
		{ID: "pmine", Tenant: iomt.DefaultTenant, Name: "Mine", Location: "north/ward-a/bed-1", CreatedAt: now},
		{ID: "ptheirs", Tenant: iomt.DefaultTenant, Name: "Theirs", Location: "north/ward-b/bed-1", CreatedAt: now},
		{ID: "pforeign", Tenant: "acme", Name: "Foreign", CreatedAt: now},
	} {
		if err := st.CreatePatient(ctx, pt); err != nil {
			t.Fatal(err)
		}
		a := iomt.Alarm{ID: "alarm-" + pt.ID, Tenant: pt.Tenant, Patient: pt.ID, Rule: "hr-high", Priority: iomt.PriorityMedium,
			Category: iomt.Physiological, State: iomt.AlarmActive, Raised: now, ConditionActive: true}
		if err := st.SaveAlarms(ctx, []iomt.Alarm{a}); err != nil {
			t.Fatal(err)
		}
		p.alarm[pt.ID] = a.ID
	}
	p.mine, p.theirs, p.foreign = "pmine", "ptheirs", "pforeign"
	for _, u := range []struct {
		login string
		role  iomt.Role
	}{{"admin", iomt.RoleAdmin}, {"clinician", iomt.RoleClinician}, {"carer", iomt.RoleCarer}, {"auditor", iomt.RoleAuditor}, {"service", iomt.RoleService}, {"other", iomt.RoleClinician}} {
		pw := castPassword
		if u.role == iomt.RoleService {
			pw = ""
		}
		usr, err := id.CreateUser(ctx, identity.NewUser{Login: u.login, Roles: []iomt.Role{u.role}, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		p.users[u.login] = usr
	}
	// Team A covers ward A by location (the patient is not listed); the carer's share lists
	// the patient directly; team B lists its patient.
	for _, tm := range []iomt.CareTeam{
		{ID: "team-a", Tenant: iomt.DefaultTenant, Name: "Ward A", Members: []string{p.users["clinician"].ID, p.users["service"].ID}, Locations: []string{"north/ward-a"}},
		{ID: "share", Tenant: iomt.DefaultTenant, Name: "Family", Members: []string{p.users["carer"].ID}, Patients: []string{p.mine}},
		{ID: "team-b", Tenant: iomt.DefaultTenant, Name: "Ward B", Members: []string{p.users["other"].ID}, Patients: []string{p.theirs}},
	} {
		if err := st.SaveCareTeam(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.n.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, login := range []string{"admin", "clinician", "carer", "auditor"} {
		p.creds[login] = p.signIn(login, castPassword)
	}
	secret, _, err := id.IssueToken(ctx, p.users["service"].ID, "matrix", []string{"system/*.cruds"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p.creds["service"] = credential{bearer: secret}
	p.creds["anonymous"] = credential{}
	return p
}

// signIn signs in through the API, as the dashboard does.
func (p *people) signIn(login, password string) credential {
	p.t.Helper()
	body := fmt.Sprintf(`{"login":%q,"password":%q}`, login, password)
	resp, err := http.Post(p.base+"/api/v1/auth/signin", "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct{ CSRF string }
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(data, &me) != nil {
		p.t.Fatalf("sign in %s: %d %s", login, resp.StatusCode, data)
	}
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				p.t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Lax", c)
			}
			return credential{cookie: c.Value, csrf: me.CSRF}
		}
	}
	p.t.Fatalf("sign in %s: no session cookie", login)
	return credential{}
}

// do sends one request as a principal and returns the status and the problem code.
func (p *people) do(method, path, body string, c credential) (int, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, p.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c.apply(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, "" // a stream that opened: do not wait for it to end
	}
	var prob struct{ Code string }
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &prob)
	return resp.StatusCode, prob.Code
}

// expect states the rules independently of the policy's code: for a need, a principal and
// the patient's relation to them, the status of a refusal, or 0 for allowed.
func expect(t *testing.T, need policy.Need, who, relation string) int {
	if need == policy.Device {
		return 401 // a device's credential, which no person holds
	}
	if who == "anonymous" {
		if need == policy.Public {
			return 0
		}
		return 401
	}
	clinical := who == "clinician" || who == "service"
	switch need {
	case policy.Public, policy.SignedIn:
		return 0
	case policy.Admin:
		return map[bool]int{true: 0, false: 403}[who == "admin"]
	case policy.Audit:
		return map[bool]int{true: 0, false: 403}[who == "auditor"]
	case policy.PatientList:
		return map[bool]int{true: 0, false: 403}[clinical || who == "carer"]
	case policy.PatientCreate:
		return map[bool]int{true: 0, false: 403}[clinical]
	case policy.PatientSummary, policy.PatientRead, policy.PatientWrite:
		switch {
		case relation == "foreign":
			return 404 // another tenant's patients do not exist for this one
		case who == "admin" || who == "auditor":
			return 403
		case who == "carer":
			if need == policy.PatientSummary && relation == "mine" {
				return 0
			}
			return 404 // a carer learns of no one they were not shown
		case relation == "mine":
			return 0
		case who == "clinician":
			return 403 // they may know the patient exists: they could break the glass
		}
		return 404
	case policy.BreakGlass:
		switch {
		case relation == "foreign":
			return 404
		case who == "clinician":
			return 0
		case who == "carer":
			return 404
		}
		return 403
	}
	t.Errorf("the matrix has no rule for need %v: state one before adding such a route", need)
	return -1
}

// TestAuthorizationMatrix walks the route table itself: every endpoint × every role × a
// patient of the caller's team, another team's and another tenant's. A route added without
// a policy, or with a need the matrix does not know, fails it.
func TestAuthorizationMatrix(t *testing.T) {
	p := startPeople(t)
	routes := p.n.Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes in the table", len(routes))
	}
	whos := []string{"anonymous", "admin", "clinician", "carer", "auditor", "service"}
	relations := map[string]string{"mine": p.mine, "theirs": p.theirs, "foreign": p.foreign}
	checked := 0
	for _, rt := range routes {
		if rt.Need.String() == "none" {
			t.Errorf("route %s has no policy", rt.Pattern)
			continue
		}
		// Every route a principal reaches leaves an audit record (sign-in and single sign-on
		// write their own, as they run before there is a principal).
		if rt.Need != policy.Public && rt.Need != policy.Device && rt.Action == "" {
			t.Errorf("route %s has no audit action", rt.Pattern)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if method == "DELETE" || strings.HasSuffix(path, "/signout") || rt.Pattern == "POST /api/v1/auth/signin" || strings.HasSuffix(path, "/totp") {
			// Destructive for the cast (ends sessions, rotates second factors): checked below
			// for the roles that must be refused, and by their own tests.
			if expect(t, rt.Need, "clinician", "mine") != 0 || rt.Need == policy.SignedIn || rt.Need == policy.Public {
				continue
			}
			whos := []string{"anonymous", "clinician", "carer", "auditor", "service"}
			for _, who := range whos {
				got, code := p.do(method, fill(path, p, p.mine), "{}", p.creds[who])
				checkCell(t, rt, who, "-", got, code, expect(t, rt.Need, who, "-"))
				checked++
			}
			continue
		}
		rels := []string{"-"}
		if rt.Need.OnPatient() || strings.Contains(path, "{alarm}") {
			rels = []string{"mine", "theirs", "foreign"}
		}
		for _, who := range whos {
			for _, rel := range rels {
				pid := relations[rel]
				if pid == "" {
					pid = p.mine
				}
				body := ""
				if method != "GET" {
					body = "{}"
					if strings.HasSuffix(path, "/silence") {
						body = fmt.Sprintf(`{"patient":%q,"for":"1m"}`, pid)
					}
				}
				got, code := p.do(method, fill(path, p, pid), body, p.creds[who])
				checkCell(t, rt, who, rel, got, code, expect(t, rt.Need, who, rel))
				checked++
			}
		}
	}
	// FHIR answers through the same policy: a patient's record and the audit trail. Its
	// refusals are OperationOutcomes, so the status alone is checked.
	for _, f := range []struct {
		path string
		need policy.Need
	}{{"/fhir/r4/Patient/{id}", policy.PatientSummary}, {"/fhir/r4/AuditEvent?_count=1", policy.Audit}} {
		for _, who := range whos {
			for _, rel := range []string{"mine", "theirs", "foreign"} {
				got, _ := p.do("GET", strings.ReplaceAll(f.path, "{id}", relations[rel]), "", p.creds[who])
				want := expect(t, f.need, who, rel)
				if want == 0 && got != 200 || want != 0 && got != want {
					t.Errorf("FHIR GET %s as %s on %s: %d, want %d (0: 200)", f.path, who, rel, got, want)
				}
				checked++
			}
		}
	}
	t.Logf("%d routes and FHIR, %d cells checked", len(routes), checked)
}

func checkCell(t *testing.T, rt api.Route, who, rel string, got int, code string, want int) {
	t.Helper()
	denied := got == 401 || code == "access-denied"
	switch {
	case want == 0 && denied:
		t.Errorf("%s as %s on %s: refused with %d, want allowed", rt.Pattern, who, rel, got)
	case want > 0 && (got != want || (want != 401 && code != "access-denied")):
		t.Errorf("%s as %s on %s: %d (code %q), want %d refused by the policy", rt.Pattern, who, rel, got, code, want)
	}
}

// fill puts the cast's identifiers into a route's path.
func fill(path string, p *people, patient string) string {
	r := strings.NewReplacer("{id}", patient, "{alarm}", p.alarm[patient], "{user}", p.users["other"].ID,
		"{token}", "no-such-token", "{team}", "team-matrix", "{path...}", "x")
	path = r.Replace(path)
	if path == "/api/v1/alarms" || path == "/api/v1/break-glass" || path == "/api/v1/audit" {
		path += "?patient=" + patient
	}
	return path
}

// A list names only the caller's patients, whatever the store holds.
func TestListsAreFiltered(t *testing.T) {
	p := startPeople(t)
	for who, want := range map[string][]string{"clinician": {p.mine}, "carer": {p.mine}, "service": {p.mine}} {
		req, _ := http.NewRequest("GET", p.base+"/api/v1/patients", nil)
		p.creds[who].apply(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Patients []iomt.Patient }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		var got []string
		for _, pt := range out.Patients {
			got = append(got, pt.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s lists %v, want %v", who, got, want)
		}
	}
}

// Break-the-glass opens another team's patient for an hour, as an emergency the trail shows.
func TestBreakTheGlass(t *testing.T) {
	p := startPeople(t)
	c := p.creds["clinician"]
	if got, _ := p.do("GET", "/api/v1/patients/"+p.theirs+"/vitals", "", c); got != 403 {
		t.Fatalf("before: %d", got)
	}
	if got, _ := p.do("POST", "/api/v1/patients/"+p.theirs+"/break-glass", `{"reason":"x"}`, c); got != 422 {
		t.Fatalf("no real reason: %d, want 422", got)
	}
	if got, _ := p.do("POST", "/api/v1/patients/"+p.theirs+"/break-glass", `{"reason":"cardiac arrest on ward B, covering"}`, c); got != 201 {
		t.Fatalf("break the glass: %d", got)
	}
	if got, _ := p.do("GET", "/api/v1/patients/"+p.theirs+"/vitals", "", c); got != 200 {
		t.Fatalf("after: %d", got)
	}
	// An hour's access cannot be made lasting by moving the patient into one's own ward.
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.theirs, `{"location":"north/ward-a/bed-9"}`, c); got != 403 {
		t.Fatalf("transfer under emergency access: %d, want 403", got)
	}
	// Nor are one's own patients moved out of sight into a ward no team of one's covers ...
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.mine, `{"location":"north/ward-b/bed-2"}`, c); got != 403 {
		t.Fatalf("transfer out of the team's care: %d, want 403", got)
	}
	// ... while a move within the team's ward is the clinician's to make.
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.mine, `{"location":"north/ward-a/bed-7"}`, c); got != 200 {
		t.Fatalf("transfer within the ward: %d", got)
	}
	if got, _ := p.do("GET", "/api/v1/break-glass", "", p.creds["auditor"]); got != 200 {
		t.Fatalf("auditor's list: %d", got)
	}
	if got, _ := p.do("GET", "/api/v1/break-glass", "", c); got != 403 {
		t.Fatalf("clinician reads the list of emergency accesses: %d", got)
	}
}

// A cookie-authenticated write without the session's CSRF token is refused.
func TestCSRF(t *testing.T) {
	p := startPeople(t)
	c := p.creds["clinician"]
	c.csrf = "forged"
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.mine, `{"mrn":"X"}`, c); got != 403 {
		t.Fatalf("forged CSRF: %d, want 403", got)
	}
	c.csrf = ""
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.mine, `{"mrn":"X"}`, c); got != 403 {
		t.Fatalf("no CSRF: %d, want 403", got)
	}
	if got, _ := p.do("PATCH", "/api/v1/patients/"+p.mine, `{"mrn":"X"}`, p.creds["clinician"]); got != 200 {
		t.Fatalf("with CSRF: %d", got)
	}
}
