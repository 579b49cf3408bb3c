package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/identity"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/internal/oidctest"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

// page drives one Chromium tab.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openBrowser starts Chromium (Debian's; the tests never download a browser) on url.
func openBrowser(t *testing.T, url string) *page {
	t.Helper()
	bin := chromium(t)
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first action starts the browser and must not carry a timeout; later ones do.
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return &page{t: t, ctx: ctx}
}

func (p *page) within(d time.Duration) context.Context {
	c, cancel := context.WithTimeout(p.ctx, d)
	p.t.Cleanup(cancel)
	return c
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.within(10*time.Second), chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits up to 30 s for a JavaScript expression to be true, across the page's reloads (the
// dashboard reloads when a session ends). The expression must not throw (use ?. on elements
// still to come): an exception stops the polling.
func (p *page) poll(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := chromedp.Run(p.within(time.Until(deadline)), chromedp.Poll[bool](expr))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %v (page shows %q)", what, err, p.eval(`document.body ? document.body.innerText.slice(0, 600) : ""`))
		}
		time.Sleep(100 * time.Millisecond) // a navigation ended the poll: poll the new page
	}
}

func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.within(15*time.Second), actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) navigate(url string) {
	p.t.Helper()
	p.do("open "+url, chromedp.Navigate(url))
}

// fill empties a field and types text in it, as a person would.
func fill(sel, text string) []chromedp.Action[chromedp.Void] {
	empty := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`).value = ""`)(ctx, t)
		return err
	})
	return []chromedp.Action[chromedp.Void]{chromedp.WaitVisible(chromedp.CSS(sel)), empty, chromedp.SendKeys(chromedp.CSS(sel), text)}
}

// signIn fills the dashboard's sign-in form and submits it.
func (p *page) signIn(login, password string) {
	p.t.Helper()
	p.do("sign in as "+login, slices.Concat(
		[]chromedp.Action[chromedp.Void]{chromedp.WaitVisible(chromedp.CSS("#login"))},
		fill("#login", login), fill("#password", password),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#signin"))})...)
}

// signInShown is true while the page shows the sign-in form and none of its content.
const signInShown = `!document.querySelector("#signin-box").hidden && getComputedStyle(document.querySelector("main")).display === "none"`

// startNode starts a node (embedded store, the alarm rules of browser_test.go) with its API on
// addr (empty: a free port), closed when the test ends.
func startNode(t *testing.T, addr string, people node.PeopleConfig) (*node.Node, string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(alarmRules), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: addr, MQTTAddr: "127.0.0.1:0", People: people, NoSync: true,
		Logger: slog.New(slog.DiscardHandler), Alarms: node.AlarmsConfig{RulesFile: rules},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, "http://" + n.HTTPAddr()
}

// newUser creates an account with a password on n.
func newUser(t *testing.T, n *node.Node, login, name, password string, roles ...iomt.Role) iomt.User {
	t.Helper()
	u, err := n.Identity().CreateUser(context.Background(), identity.NewUser{Login: login, Name: name, Roles: roles, Password: password})
	if err != nil {
		t.Fatalf("create %s: %v", login, err)
	}
	return u
}

// traffic is what the page sent to the API, as Chromium reports it in its network events: the
// browser's side of the sign-in contract, whatever the server made of it.
type traffic struct {
	mu   sync.Mutex
	byID map[network.RequestID]*sent
	all  []*sent
}

// sent is one request: method, path with query, body, headers (lower-case names, with those
// Chromium adds on the wire such as Cookie) and the answer's status (0: none came).
type sent struct {
	method, path, body string
	headers            map[string]string
	status             int64
}

func (s *sent) String() string { return strings.TrimSpace(s.method + " " + s.path + " " + s.body) }

func (tr *traffic) get(id network.RequestID) *sent {
	s := tr.byID[id]
	if s == nil {
		s = &sent{headers: map[string]string{}}
		tr.byID[id] = s
		tr.all = append(tr.all, s)
	}
	return s
}

func (s *sent) addHeaders(h network.Headers) {
	for k, v := range h {
		s.headers[strings.ToLower(k)] = fmt.Sprint(v)
	}
}

// requests returns the API requests recorded so far, in the order they left.
func (tr *traffic) requests() []sent {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []sent
	for _, s := range tr.all {
		if s.path != "" {
			c := *s
			c.headers = maps.Clone(s.headers)
			out = append(out, c)
		}
	}
	return out
}

// record starts recording the page's requests to /api/.
func (p *page) record() *traffic {
	p.t.Helper()
	tr := &traffic{byID: map[network.RequestID]*sent{}}
	// The listener runs on the tab's reading goroutine: it only files the events.
	err := chromedp.Listen(p.ctx, func(ev any) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			u, err := url.Parse(ev.Request.URL)
			if err != nil || !strings.HasPrefix(u.Path, "/api/") {
				return
			}
			s := tr.get(ev.RequestID)
			s.method, s.path = ev.Request.Method, u.RequestURI()
			for _, e := range ev.Request.PostDataEntries {
				s.body += string(e.Bytes)
			}
			s.addHeaders(ev.Request.Headers)
		case *network.EventRequestWillBeSentExtraInfo:
			tr.get(ev.RequestID).addHeaders(ev.Headers)
		case *network.EventResponseReceived:
			if s := tr.byID[ev.RequestID]; s != nil {
				s.status = ev.Response.Status
			}
		}
	})
	if err != nil {
		p.t.Fatalf("listen to the network: %v", err)
	}
	return tr
}

// sessionCookie returns the browser's session cookie for base (HttpOnly: only the browser
// itself can tell).
func (p *page) sessionCookie(base string) string {
	p.t.Helper()
	var v string
	p.do("read the session cookie", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
		for _, c := range res.Cookies {
			if c.Name == api.SessionCookie {
				v = c.Value
			}
		}
		return err
	}))
	if v == "" {
		p.t.Fatalf("no %s cookie for %s", api.SessionCookie, base)
	}
	return v
}

// meWith asks base who the session of cookie is, returning the HTTP status.
func meWith(t *testing.T, base, cookie string) int {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSignIn drives the dashboard's sign-in in Chromium against real nodes: the form, a wrong
// password, a second-factor code, the user in the header, CSRF on writes, alarm
// acknowledgement without a typed name, a session ended by the server (the page comes back
// after signing in again), another team's patient with emergency access, sign-out, sign-out
// everywhere and idle logoff.
func TestSignIn(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	ctx := context.Background()
	// The node offers single sign-on too (a real OpenID provider), so the form shows its button.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the node takes the address; the provider must know the callback first
	op := oidctest.Start(t, oidctest.User{Login: "olu", Name: "Olu Adeyemi", Groups: []string{"iomt-clinicians"}})
	redirect := "http://" + addr + "/auth/oidc/callback"
	op.AllowRedirect(redirect)
	n, base := startNode(t, addr, node.PeopleConfig{BootstrapToken: "test-bootstrap-token", OIDC: &oidc.Config{
		Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret, RedirectURL: redirect,
		Scopes: []string{"openid", "profile", "groups"}, Mapping: oidc.Mapping{Roles: map[string]iomt.Role{"iomt-clinicians": iomt.RoleClinician}},
	}})
	beds, err := sim.Provision(ctx, sim.API{Base: base, Token: "test-bootstrap-token"}, []sim.Bed{
		{Scenario: "stable-adult", Seed: 1}, {Scenario: "stable-adult", Seed: 2}, {Scenario: "stable-adult", Seed: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Ann's team has the first two beds, Bob's the third: to Ann it is another team's patient.
	mine, theirs := beds[0], beds[2]
	const annPassword, bobPassword = "correct horse battery", "battery staple horse"
	ann := newUser(t, n, "ann", "Ann Nurse", annPassword, iomt.RoleClinician)
	bob := newUser(t, n, "bob", "Bob Doctor", bobPassword, iomt.RoleClinician, iomt.RoleAdmin)
	secret, _, err := n.Identity().EnrollTOTP(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []iomt.CareTeam{
		{ID: "ward-1", Tenant: iomt.DefaultTenant, Name: "Ward 1", Members: []string{ann.ID}, Patients: []string{beds[0].Patient, beds[1].Patient}},
		{ID: "ward-2", Tenant: iomt.DefaultTenant, Name: "Ward 2", Members: []string{bob.ID}, Patients: []string{theirs.Patient}},
	} {
		if err := n.Store().SaveCareTeam(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.ReloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	// No simulator runs: the only readings are the test's, a heart rate of 72 and an SpO2 of
	// 84 that raises a high-priority alarm.
	bedside := bedsideDevice(t, base, mine.Patient)
	bedside("8867-4", "/min", 72)
	bedside("59408-5", "%", 84)

	p := openBrowser(t, "about:blank")
	wire := p.record()
	p.navigate(base + "/")
	p.poll("sign-in form first", signInShown+` && document.activeElement.id === "login"`)
	if href := p.eval(`document.querySelector("#sso").href`); href != base+"/auth/oidc/login?return=%2F" {
		t.Fatalf("single sign-on button goes to %q", href)
	}

	// A wrong password: the API's reason shows, the password is cleared.
	p.signIn("ann", "not the password")
	p.poll("wrong password refused", `document.querySelector("#signin-message").textContent === "wrong login or password" && document.querySelector("#password").value === ""`)

	// Signed in, the ward opens with the user in the header, and its stream (an EventSource,
	// with the cookie) brings a heart rate of 80 after the ward's 72.
	p.signIn("ann", annPassword)
	hr := `document.querySelector('.tile[data-patient="` + mine.Patient + `"] [data-code="8867-4"] .value')?.textContent`
	p.poll("ward after signing in", `document.querySelector("#whoami").textContent.includes("Ann Nurse") && `+hr+` === "72" && document.querySelector("#status").textContent.endsWith("live")`)
	bedside("8867-4", "/min", 80)
	p.poll("heart rate from the stream", hr+` === "80"`)
	if k := p.eval(`String(document.querySelectorAll(".tile").length)`); k != "2" {
		t.Fatalf("the ward shows %s patients, want Ann's team's 2", k)
	}
	if roles := p.eval(`document.querySelector("#whoami .sub").textContent`); roles != "clinician" {
		t.Fatalf("header shows roles %q", roles)
	}
	if got := p.eval(`location.href + " " + JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie`); got != base+"/ {}{}" {
		t.Fatalf("the page keeps %q: no secret belongs in the address, storage or a script-readable cookie", got)
	}
	annCookie := p.sessionCookie(base)

	// The patient page: acknowledging sends the reason only; the server knows who.
	p.navigate(base + "/patient.html?id=" + mine.Patient)
	p.poll("alarm on the patient page", `document.querySelector("#alarm-list .alarm")?.dataset.state === "active"`)
	alarmID := p.eval(`document.querySelector("#alarm-list .alarm").dataset.alarm`)
	row := `#alarm-list .alarm[data-alarm="` + alarmID + `"]`
	if k := p.eval(`String(document.querySelectorAll('` + row + ` input').length)`); k != "1" {
		t.Fatalf("the alarm's form has %s inputs, want the reason alone", k)
	}
	p.do("acknowledge", slices.Concat([]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(row + ` button[data-op="acknowledge"]`))},
		fill(row+` input[name="why"]`, "at the bedside"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(row + ` form.reason button[type="submit"]`))})...)
	p.poll("acknowledged", `document.querySelector('`+row+`')?.dataset.state === "acknowledged"`)
	var alarm struct {
		State       string
		Transitions []struct{ To, Who, Why string }
	}
	if c := call(t, "GET", base+"/api/v1/alarms/"+alarmID, "test-bootstrap-token", nil, &alarm); c != http.StatusOK || alarm.State != "acknowledged" ||
		!slices.ContainsFunc(alarm.Transitions, func(tr struct{ To, Who, Why string }) bool {
			return tr.To == "acknowledged" && tr.Who == "ann" && tr.Why == "at the bedside"
		}) {
		t.Fatalf("the alarm on the server: HTTP %d %+v, want acknowledged by ann at the bedside", c, alarm)
	}

	// The server ends the session (an administrator signs Ann out everywhere): the stream
	// ends, the page finds the session gone and shows the sign-in form; after signing in it is
	// back where it was.
	if _, err := n.Identity().SignOutEverywhere(ctx, ann.ID); err != nil {
		t.Fatal(err)
	}
	p.poll("sign-in form after the session ended", signInShown+` && document.querySelector("#signin-message").textContent === "Your session ended; sign in again."`)
	if k := p.eval(`String(document.querySelectorAll("#alarm-list .alarm").length)`); k != "0" {
		t.Fatalf("%s alarms still in the page while signed out", k)
	}
	if c := meWith(t, base, annCookie); c != http.StatusUnauthorized {
		t.Fatalf("Ann's session after the server ended it: HTTP %d, want 401", c)
	}
	p.signIn("ann", annPassword)
	p.poll("patient page resumed", `location.search === "?id=`+mine.Patient+`" && document.querySelector('`+row+`')?.dataset.state === "acknowledged"`)

	// Another team's patient: the refusal's detail in place of the page, and emergency access
	// with a reason of at least 10 characters.
	p.navigate(base + "/patient.html?id=" + theirs.Patient)
	p.poll("access refused", `document.querySelector("#denied-detail").textContent.startsWith(`+strconv.Quote(`patient "`+theirs.Patient+`" is not in the care of your teams`)+`) && !document.querySelector("#break-glass-form").hidden && getComputedStyle(document.querySelector("main")).display === "none"`)
	p.do("too short a reason", slices.Concat(fill("#break-glass-reason", "urgent"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#break-glass"))})...)
	if v := p.eval(`String(document.querySelector("#break-glass-reason").validity.tooShort)`); v != "true" {
		t.Fatalf("a 6-character reason: tooShort %s", v)
	}
	p.do("break the glass", slices.Concat(fill("#break-glass-reason", "cardiac arrest on ward 3, covering"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#break-glass"))})...)
	pname := `document.querySelector("#pname").textContent.startsWith(` + strconv.Quote(theirs.Name) + `)`
	p.poll("patient opened after breaking the glass", pname+` && document.querySelector("#denied").hidden`)
	var glass struct {
		Accesses []struct{ User, Patient, Reason string }
	}
	if c := call(t, "GET", base+"/api/v1/break-glass?patient="+theirs.Patient, "test-bootstrap-token", nil, &glass); c != http.StatusOK || len(glass.Accesses) != 1 ||
		glass.Accesses[0].User != ann.ID || glass.Accesses[0].Reason != "cardiac arrest on ward 3, covering" {
		t.Fatalf("emergency accesses on the server: HTTP %d %+v", c, glass)
	}

	// Signing out ends the session on the server and shows the form.
	annCookie = p.sessionCookie(base)
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")))
	p.poll("signed out", signInShown+` && document.querySelector("#signin-message").textContent === "You signed out."`)
	if c := meWith(t, base, annCookie); c != http.StatusUnauthorized {
		t.Fatalf("Ann's session after signing out: HTTP %d, want 401", c)
	}

	// A second factor: the code field appears when the server asks for it; a wrong code is
	// refused, the right one (from Bob's authenticator) lets him in.
	p.signIn("bob", bobPassword)
	p.poll("code asked for", `!document.querySelector("#code-row").hidden && document.activeElement.id === "code" && document.querySelector("#signin-message").textContent === "a second-factor code is required"`)
	p.do("wrong code", slices.Concat(fill("#code", wrongCode(t, secret)), []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#signin"))})...)
	p.poll("wrong code refused", `document.querySelector("#signin-message").textContent === "wrong or reused second-factor code"`)
	code, err := identity.TOTPCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.do("right code", slices.Concat(fill("#password", bobPassword), fill("#code", code),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#signin"))})...)
	p.poll("signed in with a code", `document.querySelector("#whoami").textContent.includes("Bob Doctor") && `+pname)

	// Sign out everywhere.
	p.do("sign out everywhere", chromedp.Click(chromedp.CSS("#signout-everywhere")))
	p.poll("signed out everywhere", signInShown+` && document.querySelector("#signin-message").textContent === "You signed out on every device."`)

	// Idle logoff, on a node whose sessions end after 3 s unused: with nobody at the keyboard
	// the page signs out by itself, and the server has ended the session too.
	idle, idleBase := startNode(t, "", node.PeopleConfig{BootstrapToken: "test-bootstrap-token", IdleTimeout: 3 * time.Second})
	const idaPassword = "idle hands all day"
	newUser(t, idle, "ida", "Ida Idle", idaPassword, iomt.RoleClinician)
	p.navigate(idleBase + "/")
	p.poll("sign-in form without single sign-on", signInShown+` && document.querySelector("#sso").hidden`)
	p.signIn("ida", idaPassword)
	p.poll("signed in", `document.querySelector("#whoami").textContent.includes("Ida Idle")`)
	idaCookie := p.sessionCookie(idleBase)
	p.poll("idle logoff", signInShown+` && document.querySelector("#signin-message").textContent === "Your session ended after 3 s without activity; sign in again."`)
	if c := meWith(t, idleBase, idaCookie); c != http.StatusUnauthorized {
		t.Fatalf("Ida's session after the idle logoff: HTTP %d, want 401", c)
	}

	// What the browser sent: never an Authorization header (the session is a cookie, the
	// stream's too), every write with the session's CSRF token, and the writes the person made.
	reqs := wire.requests()
	var writes, signouts []string
	streamed := false
	for _, r := range reqs {
		if a, ok := r.headers["authorization"]; ok {
			t.Errorf("%s carried Authorization %q", r.method+" "+r.path, a)
		}
		if r.method == "GET" && strings.HasPrefix(r.path, "/api/v1/stream") && strings.Contains(r.headers["cookie"], api.SessionCookie+"=") {
			streamed = true
		}
		if r.method == "GET" || r.path == "/api/v1/auth/signin" {
			continue
		}
		if r.headers["x-csrf-token"] == "" || r.status == http.StatusForbidden {
			t.Errorf("%s: X-CSRF-Token %q, HTTP %d", r.String(), r.headers["x-csrf-token"], r.status)
		}
		if strings.HasPrefix(r.path, "/api/v1/auth/signout") {
			signouts = append(signouts, fmt.Sprintf("%s %d", r.path, r.status))
		} else {
			writes = append(writes, r.String())
		}
	}
	if !streamed {
		t.Error("no ward stream carried the session cookie")
	}
	want := []string{
		"POST /api/v1/alarms/" + alarmID + `/acknowledge {"why":"at the bedside"}`,
		"POST /api/v1/patients/" + theirs.Patient + `/break-glass {"reason":"cardiac arrest on ward 3, covering"}`,
	}
	if !slices.Equal(writes, want) {
		t.Errorf("writes %q, want %q", writes, want)
	}
	// Ida's page signs out after the server has ended her session (401) or just before (200).
	if len(signouts) != 3 || signouts[0] != "/api/v1/auth/signout 200" || signouts[1] != "/api/v1/auth/signout?everywhere=true 200" ||
		!strings.HasPrefix(signouts[2], "/api/v1/auth/signout ") {
		t.Errorf("sign-outs %q, want Ann's, Bob's everywhere and Ida's", signouts)
	}
	refused := 0
	for _, r := range reqs {
		if r.status == http.StatusUnauthorized {
			refused++
		}
	}
	t.Logf("%d API requests, %d refused with 401; sign-outs: %q", len(reqs), refused, signouts)
}

// wrongCode returns a 6-digit code that is not secret's, now or a step either side.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	now := time.Now()
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", i)
		ok := true
		for _, d := range []time.Duration{-time.Minute, -30 * time.Second, 0, 30 * time.Second, time.Minute} {
			if real, err := identity.TOTPCode(secret, now.Add(d)); err != nil || real == c {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
}
