package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/policy"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/store/postgres"
)

// Control characters (NUL above all, which PostgreSQL cannot store: it used to be a 500) and
// over-long text in a patient's names and identifiers or a device's identifiers are refused
// with 422 and a reason naming the field, on both stores, by create and by update, and
// nothing is stored; other bad fields keep their 400.
func TestHostileText(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T) iomt.Store
	}{
		{"embedded", func(t *testing.T) iomt.Store {
			st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"postgres", func(t *testing.T) iomt.Store {
			st, err := postgres.Open(context.Background(), testDB(t), postgres.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			t.Cleanup(func() { _ = st.Close() })
			h, err := api.New(api.Config{Store: st, BootstrapToken: token, Policy: policy.New()})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			testHostileText(t, srv)
		})
	}
}

func testHostileText(t *testing.T, srv *httptest.Server) {
	long := strings.Repeat("x", iomt.MaxNameLen+1)
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	for _, c := range []struct{ body, want string }{
		{`{"name":"Ada\u0000Lovelace"}`, `"name" has a control character (U+0000) at byte 3`},
		{`{"name":"Ada\u001b[31m Lovelace"}`, `"name" has a control character (U+001B)`},
		{`{"family":"Love\u0000lace","given":["Ada"]}`, `"family" has a control character (U+0000)`},
		{`{"family":"Lovelace","given":["Ada","Au\u0007gusta"]}`, `"given[1]" has a control character (U+0007)`},
		{`{"name":"Ada","mrn":"M\u00001"}`, `"mrn" has a control character (U+0000)`},
		{`{"name":` + str(long) + `}`, `"name" is 201 bytes long, at most 200 are allowed`},
		{`{"name":"Ada","mrn":` + str(long) + `}`, `"mrn" is 201 bytes long`},
	} {
		var p problem
		if st := call(t, srv, "POST", "/api/v1/patients", c.body, &p); st != http.StatusUnprocessableEntity || !strings.Contains(p.Detail, c.want) {
			t.Errorf("POST %.80s: %d %q, want 422 with %q", c.body, st, p.Detail, c.want)
		}
	}
	// A bad gender is still a 400, as before.
	var p problem
	if st := call(t, srv, "POST", "/api/v1/patients", `{"name":"Ada","gender":"F"}`, &p); st != http.StatusBadRequest {
		t.Errorf("bad gender: %d %q, want 400", st, p.Detail)
	}
	var list struct{ Patients []patient }
	if call(t, srv, "GET", "/api/v1/patients", "", &list); len(list.Patients) != 0 {
		t.Fatalf("refused patients were stored: %+v", list.Patients)
	}

	var ada patient
	if st := call(t, srv, "POST", "/api/v1/patients", `{"name":"Ada Lovelace","mrn":"M1"}`, &ada); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	for _, c := range []struct{ body, want string }{
		{`{"name":"Ada\u0000"}`, `"name" has a control character (U+0000)`},
		{`{"given":["A\nda"]}`, `"given[0]" has a control character (U+000A)`},
		{`{"mrn":"M\u00851"}`, `"mrn" has a control character (U+0085)`},
		{`{"family":` + str(long) + `}`, `"family" is 201 bytes long`},
	} {
		var p problem
		if st := call(t, srv, "PATCH", "/api/v1/patients/"+ada.ID, c.body, &p); st != http.StatusUnprocessableEntity || !strings.Contains(p.Detail, c.want) {
			t.Errorf("PATCH %.80s: %d %q, want 422 with %q", c.body, st, p.Detail, c.want)
		}
	}
	var got patient
	if call(t, srv, "GET", "/api/v1/patients/"+ada.ID, "", &got); got.Name != "Ada Lovelace" || got.MRN != "M1" {
		t.Errorf("after refused updates: %+v", got)
	}

	for _, c := range []struct{ body, want string }{
		{`{"kind":"scale","identifiers":[{"system":"urn:sn","value":"SN\u00001"}]}`, `"identifiers": "identifier 0: value" has a control character (U+0000)`},
		{`{"kind":"scale","identifiers":[{"value":` + str(strings.Repeat("9", iomt.MaxIdentifierLength+1)) + `}]}`, `"identifiers": "identifier 0: value" is 257 bytes long`},
		{`{"kind":"scale","patient":"p\u0000"}`, `"patient" has a control character (U+0000)`},
	} {
		var p problem
		if st := call(t, srv, "POST", "/api/v1/devices", c.body, &p); st != http.StatusUnprocessableEntity || !strings.Contains(p.Detail, c.want) {
			t.Errorf("POST %.80s: %d %q, want 422 with %q", c.body, st, p.Detail, c.want)
		}
	}
}

// testDB creates a fresh database on the server IOMT_TEST_POSTGRES names (skipping without
// it), dropped when the test ends, and returns its URL.
func testDB(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("IOMT_TEST_POSTGRES")
	if admin == "" {
		t.Skip("IOMT_TEST_POSTGRES is not set (a PostgreSQL URL whose user may create databases)")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal("IOMT_TEST_POSTGRES is not a URL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to IOMT_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	name := "iomt_api_test_" + hex.EncodeToString([]byte(rand.Text()[:6]))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u.Path = "/" + name
	return u.String()
}
