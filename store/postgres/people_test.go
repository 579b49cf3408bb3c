package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/store/storetest"
)

// Identity records written by one Store are read back, indexes and uniqueness included, by
// a new Store on the same database (a restart, or another node).
func TestIdentityAcrossReopen(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	storetest.IdentityAcrossReopen(t, openTest(t, u, Options{}), func(s iomt.Store) iomt.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return openTest(t, u, Options{})
	})
}

// Two nodes creating the same login, in different cases, at once: the table's unique index
// lets exactly one through.
func TestConcurrentCreateUserTwoNodes(t *testing.T) {
	t.Parallel()
	u := testDB(t)
	stores := []*Store{openTest(t, u, Options{}), openTest(t, u, Options{})}
	ctx := context.Background()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			login := map[bool]string{false: "nurse", true: "Nurse"}[i%3 == 0]
			errs[i] = stores[i%2].CreateUser(ctx, storetest.User(fmt.Sprintf("u%02d", i), "t1", login))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, iomt.ErrDuplicate) {
			t.Errorf("caller %d: %v, want nil or ErrDuplicate", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates of one login succeeded, want exactly 1", won)
	}
}

// The tables refuse what the store never writes, whoever writes: an unknown role, no role,
// a NULL member, a hash that is not SHA-256, an access that ends before it starts, a
// location that is not a path, and an issuer without a subject.
func TestIdentityConstraints(t *testing.T) {
	t.Parallel()
	s := openTest(t, testDB(t), Options{})
	ctx := context.Background()
	for sql, want := range map[string]string{
		`INSERT INTO users (id, tenant, login, login_key, roles, created_at) VALUES ('u1', 't', 'a', 'a', ARRAY['root'], now())`:                                 "users_roles_check",
		`INSERT INTO users (id, tenant, login, login_key, roles, created_at) VALUES ('u1', 't', 'a', 'a', '{}', now())`:                                          "users_roles_check",
		`INSERT INTO users (id, tenant, login, login_key, roles, created_at) VALUES ('u1', 't', E'a\n', 'a', ARRAY['admin'], now())`:                             "users_login_check",
		`INSERT INTO users (id, tenant, login, login_key, roles, issuer, created_at) VALUES ('u1', 't', 'a', 'a', ARRAY['admin'], 'i', now())`:                   "users_oidc_check",
		`INSERT INTO care_teams (id, tenant, members, updated_at) VALUES ('c1', 't', ARRAY['u1', NULL], now())`:                                                  "care_teams_lists_check",
		`INSERT INTO api_tokens (id, tenant, user_id, hash, created_at, expires_at) VALUES ('k1', 't', 'u', '\x00', now(), now())`:                               "api_tokens_hash_check",
		`INSERT INTO break_glass (id, tenant, user_id, patient, reason, start_at, until_at) VALUES ('b1', 't', 'u', 'p', 'r', now(), now())`:                     "break_glass_period_check",
		`INSERT INTO break_glass (id, tenant, user_id, patient, reason, start_at, until_at) VALUES ('b1', 't', 'u', 'p', ' ', now(), now() + interval '1 hour')`: "break_glass_reason_check",
		`INSERT INTO patients (id, tenant, name, created_at, location) VALUES ('p1', 't', 'n', now(), 'north//ward')`:                                            "patients_location_check",
	} {
		if _, err := s.Pool().Exec(ctx, sql); constraint(err) != want {
			t.Errorf("%s: %v, want the check constraint %s", sql, err, want)
		}
	}
}
