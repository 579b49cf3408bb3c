package policy

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

type source struct {
	patients []iomt.Patient
	teams    []iomt.CareTeam
	glass    []iomt.BreakGlass
}

func (s source) Patients(context.Context, iomt.PatientFilter) ([]iomt.Patient, error) {
	return s.patients, nil
}
func (s source) CareTeams(context.Context, iomt.CareTeamFilter) ([]iomt.CareTeam, error) {
	return s.teams, nil
}
func (s source) BreakGlasses(context.Context, iomt.BreakGlassFilter) ([]iomt.BreakGlass, error) {
	return s.glass, nil
}

var now = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)

func fixture(t testing.TB) *Policy {
	t.Helper()
	p := New()
	src := source{
		patients: []iomt.Patient{
			{ID: "mine", Tenant: "default"},
			{ID: "ward3", Tenant: "default", Location: "north/ward-3/bed-12"},
			{ID: "ward30", Tenant: "default", Location: "north/ward-30/bed-1"},
			{ID: "theirs", Tenant: "default"},
			{ID: "other-tenant", Tenant: "acme"},
		},
		teams: []iomt.CareTeam{
			{ID: "t1", Tenant: "default", Members: []string{"nurse", "carer", "svc"}, Patients: []string{"mine"}, Locations: []string{"north/ward-3"}},
			{ID: "t2", Tenant: "default", Members: []string{"other"}, Patients: []string{"theirs"}},
		},
		glass: []iomt.BreakGlass{{User: "doc", Patient: "theirs", Until: now.Add(time.Hour)}},
	}
	if err := p.Reload(context.Background(), src, now); err != nil {
		t.Fatal(err)
	}
	return p
}

func user(id string, roles ...iomt.Role) Principal {
	return Principal{Kind: KindUser, ID: id, Tenant: "default", Roles: roles}
}

func TestDecide(t *testing.T) {
	p := fixture(t)
	nurse := user("nurse", iomt.RoleClinician)
	carer := user("carer", iomt.RoleCarer)
	admin := user("admin", iomt.RoleAdmin)
	doc := user("doc", iomt.RoleClinician)
	cases := []struct {
		name   string
		pr     Principal
		q      Request
		status int // 0: allowed
		emerg  bool
	}{
		{"anonymous", Principal{}, Request{Need: SignedIn}, 401, false},
		{"nurse reads a team patient", nurse, Request{Need: PatientRead, Patient: "mine"}, 0, false},
		{"nurse reads a patient in the team's ward", nurse, Request{Need: PatientRead, Patient: "ward3"}, 0, false},
		{"ward-3 does not cover ward-30", nurse, Request{Need: PatientRead, Patient: "ward30"}, 403, false},
		{"nurse reads another team's patient", nurse, Request{Need: PatientRead, Patient: "theirs"}, 403, false},
		{"another tenant's patient is not found", nurse, Request{Need: PatientRead, Patient: "other-tenant"}, 404, false},
		{"unknown patient", nurse, Request{Need: PatientRead, Patient: "nobody"}, 404, false},
		{"carer reads a summary", carer, Request{Need: PatientSummary, Patient: "mine"}, 0, false},
		{"carer may not read the full record", carer, Request{Need: PatientRead, Patient: "mine"}, 404, false},
		{"carer may not write", carer, Request{Need: PatientWrite, Patient: "mine"}, 404, false},
		{"admin reads no patient data", admin, Request{Need: PatientSummary, Patient: "mine"}, 403, false},
		{"admin lists no patients", admin, Request{Need: PatientList}, 403, false},
		{"admin manages", admin, Request{Need: Admin}, 0, false},
		{"nurse does not manage", nurse, Request{Need: Admin}, 403, false},
		{"auditor reads the trail", user("a", iomt.RoleAuditor), Request{Need: Audit}, 0, false},
		{"auditor reads no patient", user("a", iomt.RoleAuditor), Request{Need: PatientRead, Patient: "mine"}, 403, false},
		{"break-the-glass is an emergency", doc, Request{Need: PatientRead, Patient: "theirs"}, 0, true},
		{"carer cannot break the glass", carer, Request{Need: BreakGlass, Patient: "theirs"}, 404, false},
		{"forgotten policy", nurse, Request{Patient: "mine"}, 403, false},
		{"bootstrap", Principal{Kind: KindBootstrap, Tenant: "default"}, Request{Need: PatientWrite, Patient: "theirs"}, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(c.pr, c.q, now)
			if c.status == 0 && !d.Allow || c.status != 0 && (d.Allow || d.Status != c.status) {
				t.Fatalf("got %+v, want status %d (0: allowed)", d, c.status)
			}
			if d.Emergency != c.emerg {
				t.Fatalf("emergency %v, want %v", d.Emergency, c.emerg)
			}
			if !d.Allow && d.Reason == "" {
				t.Fatal("a refusal without a reason")
			}
		})
	}
	if d := p.Decide(doc, Request{Need: PatientRead, Patient: "theirs"}, now.Add(time.Hour)); d.Allow {
		t.Fatal("an emergency access outlived its end")
	}
}

func TestScopes(t *testing.T) {
	p := fixture(t)
	scopes, err := ParseScopes("openid system/Observation.rs patient/Observation.rs?category=vital-signs")
	if err != nil {
		t.Fatal(err)
	}
	svc := user("svc", iomt.RoleService)
	svc.Kind, svc.Scopes = KindToken, scopes[:1]
	if d := p.Decide(svc, Request{Need: PatientRead, Patient: "mine", Resource: "Observation", Interaction: "s"}, now); !d.Allow {
		t.Fatalf("Observation search refused: %+v", d)
	}
	if d := p.Decide(svc, Request{Need: PatientRead, Patient: "mine", Resource: "Patient", Interaction: "r"}, now); d.Allow || d.Status != http.StatusForbidden {
		t.Fatalf("Patient read with an Observation scope: %+v", d)
	}
	if d := p.Decide(svc, Request{Need: PatientWrite, Patient: "mine", Resource: "Observation", Interaction: "c"}, now); d.Allow {
		t.Fatalf("create with a read scope: %+v", d)
	}
	if d := p.Decide(svc, Request{Need: PatientRead, Patient: "theirs", Resource: "Observation", Interaction: "s"}, now); d.Allow {
		t.Fatalf("scope widened the service account's teams: %+v", d)
	}
	// An account that is also an admin gets nothing without a resource through a scoped token.
	admin := svc
	admin.Roles = []iomt.Role{iomt.RoleService, iomt.RoleAdmin}
	if d := p.Decide(admin, Request{Need: Admin}, now); d.Allow || d.Status != http.StatusForbidden {
		t.Fatalf("a scoped token reached an admin route without a resource: %+v", d)
	}
	admin.Scopes = nil
	if d := p.Decide(admin, Request{Need: Admin}, now); !d.Allow {
		t.Fatalf("the same account without scopes: %+v", d)
	}
	svc.Scopes = scopes[1:]
	vit := url.Values{"category": {"vital-signs"}}
	if d := p.Decide(svc, Request{Need: PatientRead, Patient: "mine", Resource: "Observation", Interaction: "s", Query: vit}, now); !d.Allow {
		t.Fatalf("vital-signs search refused: %+v", d)
	}
	if d := p.Decide(svc, Request{Need: PatientRead, Patient: "mine", Resource: "Observation", Interaction: "s"}, now); d.Allow {
		t.Fatalf("unrestricted search with a vital-signs scope: %+v", d)
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]string{
		"system/Observation.rs": "", "user/Patient.r": "", "patient/*.read": "", "user/Observation.write": "",
		"system/Observation.sr":    "permissions must be letters of cruds in that order",
		"clinic/Observation.rs":    "context must be patient, user or system",
		"system/observation.rs":    "must be a FHIR resource type",
		"system/Observation":       "want Resource.permissions",
		"Observation.rs":           "want context/Resource.permissions",
		"system/Observation.rs?":   "the query after ? must be",
		"system/Observation.rrs":   "permissions must be",
		"system/Observation.cruds": "",
	} {
		_, err := ParseScope(in)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseScope(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestPatientsScope(t *testing.T) {
	p := fixture(t)
	s := p.Patients(user("nurse", iomt.RoleClinician), now)
	if !s.Has("mine") || !s.Has("ward3") || s.Has("ward30") || s.Has("theirs") || s.Has("other-tenant") {
		t.Fatalf("nurse's patients: %v", s.Patients)
	}
	if s := p.Patients(user("doc", iomt.RoleClinician), now); !s.Has("theirs") {
		t.Fatal("an open emergency access is not listed")
	}
	if s := p.Patients(user("admin", iomt.RoleAdmin), now); len(s.Patients) != 0 || s.All {
		t.Fatalf("admin lists patients: %v", s.Patients)
	}
}

// BenchmarkDecide measures the permission check on the hot path: a clinician reading one of
// a ward's 2,000 patients, 20 teams.
func BenchmarkDecide(b *testing.B) {
	p := New()
	var src source
	for i := range 2000 {
		src.patients = append(src.patients, iomt.Patient{ID: "p" + strconv.Itoa(i), Tenant: "default", Location: "site/ward-" + strconv.Itoa(i%20) + "/bed-" + strconv.Itoa(i)})
	}
	for i := range 20 {
		src.teams = append(src.teams, iomt.CareTeam{ID: "t" + strconv.Itoa(i), Tenant: "default", Members: []string{"nurse"}, Locations: []string{"site/ward-" + strconv.Itoa(i)}})
	}
	if err := p.Reload(context.Background(), src, now); err != nil {
		b.Fatal(err)
	}
	nurse := user("nurse", iomt.RoleClinician)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if d := p.Decide(nurse, Request{Need: PatientRead, Patient: "p1999", Resource: "Observation", Interaction: "s"}, now); !d.Allow {
			b.Fatal(d)
		}
	}
}
