package web_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iomt/iomt/web"
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

// contractUser is an account of the sign-in contract's server.
type contractUser struct {
	login, password, code, name string
	roles                       []string
	idle                        int // seconds
}

var contractUsers = map[string]contractUser{
	"ann": {login: "ann", password: "correct horse", name: "Ann Nurse", roles: []string{"clinician"}, idle: 900},
	"bob": {login: "bob", password: "battery staple", code: "123456", name: "Bob Doctor", roles: []string{"clinician", "admin"}, idle: 900},
	"ida": {login: "ida", password: "idle hands", name: "Ida Idle", roles: []string{"clinician"}, idle: 3},
}

type contractSession struct {
	user contractUser
	csrf string
	done chan struct{} // closed when the session ends: its streams end with it
}

// authContract serves the dashboard and the API contract issue #18 sets for its sign-in
// (GET /api/v1/auth/config, POST /api/v1/auth/signin, GET /api/v1/me, POST /api/v1/auth/signout,
// a session cookie, X-CSRF-Token on every write, problem+json refusals with a code, 403
// access-denied and break-the-glass), with just enough of the clinical API for the pages. It
// pins the browser's side of that contract; the end-to-end test in browser_test.go runs the
// pages against a real node.
type authContract struct {
	mu       sync.Mutex
	sessions map[string]*contractSession // by cookie value
	acked    bool
	glass    bool     // emergency access to p2 granted
	bodies   []string // bodies of the writes to the clinical API
	signouts []string // logins signed out
	bearer   int      // requests carrying an Authorization header
	badCSRF  int      // writes whose X-CSRF-Token did not match their session's
}

func problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "detail": detail})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decodeStrict reads a JSON body, refusing unknown members as the API does.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusBadRequest, "bad-request", err.Error())
		return false
	}
	return true
}

func (c *authContract) me(s *contractSession) map[string]any {
	return map[string]any{"id": "u-" + s.user.login, "kind": "user", "login": s.user.login, "name": s.user.name,
		"roles": s.user.roles, "csrf": s.csrf, "expires": time.Now().Add(8 * time.Hour).UTC().Format(time.RFC3339),
		"idleTimeoutSeconds": s.user.idle}
}

// endSessions ends a user's sessions as the server's idle logoff would.
func (c *authContract) endSessions(login string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.sessions {
		if s.user.login == login {
			close(s.done)
			delete(c.sessions, k)
		}
	}
}

func (c *authContract) sessionsOf(login string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.sessions {
		if s.user.login == login {
			n++
		}
	}
	return n
}

func (c *authContract) signin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Login    string `json:"login"`
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	if !decodeStrict(w, r, &in) {
		return
	}
	u, ok := contractUsers[in.Login]
	switch {
	case !ok || u.password != in.Password:
		problem(w, http.StatusUnauthorized, "bad-credentials", "Wrong login or password.")
		return
	case u.code != "" && in.Code == "":
		problem(w, http.StatusUnauthorized, "code-required", "Enter the 6-digit code from your authenticator app.")
		return
	case u.code != "" && in.Code != u.code:
		problem(w, http.StatusUnauthorized, "bad-code", "That code is wrong or has expired.")
		return
	}
	s := &contractSession{user: u, csrf: rand.Text(), done: make(chan struct{})}
	id := rand.Text()
	c.mu.Lock()
	c.sessions[id] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "iomt_session", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, c.me(s))
}

// authed lets a request with a live session through; a write also needs the session's CSRF token.
func (c *authContract) authed(h func(http.ResponseWriter, *http.Request, *contractSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		var s *contractSession
		if ck, err := r.Cookie("iomt_session"); err == nil {
			s = c.sessions[ck.Value]
		}
		badCSRF := s != nil && r.Method != http.MethodGet && r.Header.Get("X-CSRF-Token") != s.csrf
		if badCSRF {
			c.badCSRF++
		}
		c.mu.Unlock()
		switch {
		case s == nil:
			problem(w, http.StatusUnauthorized, "unauthenticated", "Sign in first.")
		case badCSRF:
			problem(w, http.StatusForbidden, "csrf", "The request lacks the session's CSRF token.")
		default:
			h(w, r, s)
		}
	}
}

func (c *authContract) signout(w http.ResponseWriter, r *http.Request, s *contractSession) {
	c.mu.Lock()
	c.signouts = append(c.signouts, s.user.login)
	c.mu.Unlock()
	if r.URL.Query().Get("everywhere") == "true" {
		c.endSessions(s.user.login)
	} else {
		ck, _ := r.Cookie("iomt_session")
		c.mu.Lock()
		close(s.done)
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: "iomt_session", Path: "/", MaxAge: -1, HttpOnly: true})
	w.WriteHeader(http.StatusNoContent)
}

// stream sends one heart rate of 80 and stays open until the client leaves or the session ends.
func (c *authContract) stream(w http.ResponseWriter, r *http.Request, s *contractSession, patient string) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, ": streaming\n\nevent: observation\ndata: {\"patient\":%q,\"code\":\"8867-4\",\"value\":80,\"unit\":\"/min\",\"time\":%q}\n\n",
		patient, time.Now().UTC().Format(time.RFC3339Nano))
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
}

func (c *authContract) alarm() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	raised := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	a := map[string]any{"id": "a1", "patient": "p1", "rule": "spo2-low", "priority": "high", "state": "active",
		"raised": raised, "message": "SpO2 84 % (below 85 %)", "level": 0, "conditionActive": true, "category": "physiological",
		"transitions": []map[string]any{{"when": raised, "to": "active", "who": "rule spo2-low"}}}
	if c.acked {
		a["state"] = "acknowledged"
		a["transitions"] = append(a["transitions"].([]map[string]any), map[string]any{"when": raised, "from": "active", "to": "acknowledged", "who": "user/ann", "why": "at the bedside"})
	}
	return a
}

// visible refuses p2 (another team's patient) until the glass is broken.
func (c *authContract) visible(w http.ResponseWriter, id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "p2" && !c.glass {
		problem(w, http.StatusForbidden, "access-denied", "Pat Two is not a patient of your care teams. In an emergency, break the glass: POST /api/v1/patients/p2/break-glass with your reason.")
		return false
	}
	return true
}

func (c *authContract) handler() http.Handler {
	m := http.NewServeMux()
	m.Handle("/", web.Handler())
	m.HandleFunc("GET /api/v1/auth/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"password": true, "sso": true, "idleTimeoutSeconds": 900})
	})
	m.HandleFunc("POST /api/v1/auth/signin", c.signin)
	m.HandleFunc("GET /api/v1/me", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) { writeJSON(w, c.me(s)) }))
	m.HandleFunc("POST /api/v1/auth/signout", c.authed(c.signout))
	m.HandleFunc("GET /api/v1/ward", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		writeJSON(w, map[string]any{"patients": []map[string]any{{"id": "p1", "name": "Pat One", "mrn": "1001",
			"vitals": []map[string]any{{"code": "8867-4", "value": 72, "time": time.Now().UTC().Format(time.RFC3339)}}}}})
	}))
	m.HandleFunc("GET /api/v1/stream", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) { c.stream(w, r, s, "p1") }))
	m.HandleFunc("GET /api/v1/alarms", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		list := []map[string]any{}
		if p := r.URL.Query().Get("patient"); p == "" || p == "p1" {
			list = append(list, c.alarm())
		}
		writeJSON(w, map[string]any{"alarms": list})
	}))
	m.HandleFunc("POST /api/v1/alarms/{id}/acknowledge", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		var in struct {
			Why string `json:"why"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		c.mu.Lock()
		c.acked = true
		c.bodies = append(c.bodies, "acknowledge "+in.Why)
		c.mu.Unlock()
		writeJSON(w, c.alarm())
	}))
	m.HandleFunc("GET /api/v1/patients/{id}", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		if id := r.PathValue("id"); c.visible(w, id) {
			writeJSON(w, map[string]any{"id": id, "name": map[string]string{"p1": "Pat One", "p2": "Pat Two"}[id]})
		}
	}))
	m.HandleFunc("GET /api/v1/patients/{id}/{what}", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		if !c.visible(w, r.PathValue("id")) {
			return
		}
		switch r.PathValue("what") {
		case "stream":
			c.stream(w, r, s, r.PathValue("id"))
		case "vitals":
			writeJSON(w, map[string]any{"vitals": []any{}})
		case "observations":
			writeJSON(w, map[string]any{"points": []any{}})
		case "waveforms":
			writeJSON(w, map[string]any{"code": r.URL.Query().Get("code"), "segments": []any{}})
		default:
			http.NotFound(w, r)
		}
	}))
	m.HandleFunc("POST /api/v1/patients/{id}/break-glass", c.authed(func(w http.ResponseWriter, r *http.Request, s *contractSession) {
		var in struct {
			Reason string `json:"reason"`
		}
		if !decodeStrict(w, r, &in) {
			return
		}
		c.mu.Lock()
		c.glass = true
		c.bodies = append(c.bodies, "break-glass "+in.Reason)
		c.mu.Unlock()
		writeJSON(w, map[string]any{"until": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			c.mu.Lock()
			c.bearer++
			c.mu.Unlock()
		}
		m.ServeHTTP(w, r)
	})
}

// TestSignIn drives the dashboard's sign-in in Chromium against the API contract of issue #18:
// the form, a wrong password, a second-factor code, the user in the header, CSRF on writes,
// alarm acknowledgement without a typed name, a session ended by the server (the page comes
// back after signing in again), another team's patient with emergency access, sign-out and
// idle logoff.
func TestSignIn(t *testing.T) {
	c := &authContract{sessions: map[string]*contractSession{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	p := openBrowser(t, base+"/")
	p.poll("sign-in form first", signInShown+` && document.activeElement.id === "login"`)
	if href := p.eval(`document.querySelector("#sso").href`); href != base+"/auth/oidc/login?return=%2F" {
		t.Fatalf("single sign-on button goes to %q", href)
	}

	// A wrong password: the API's reason shows, the password is cleared.
	p.signIn("ann", "wrong")
	p.poll("wrong password refused", `document.querySelector("#signin-message").textContent === "Wrong login or password." && document.querySelector("#password").value === ""`)

	// Signed in, the ward opens with the user in the header, and its stream (an EventSource,
	// with the cookie) brings a heart rate of 80 after the ward's 72.
	p.signIn("ann", "correct horse")
	hr := `document.querySelector('.tile[data-patient="p1"] [data-code="8867-4"] .value')?.textContent`
	p.poll("ward after signing in", `document.querySelector("#whoami").textContent.includes("Ann Nurse") && `+hr+` === "80"`)
	if roles := p.eval(`document.querySelector("#whoami .sub").textContent`); roles != "clinician" {
		t.Fatalf("header shows roles %q", roles)
	}
	if got := p.eval(`location.href + " " + JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie`); got != base+"/ {}{}" {
		t.Fatalf("the page keeps %q: no secret belongs in the address, storage or a script-readable cookie", got)
	}

	// The patient page: acknowledging sends the reason only; the server knows who.
	p.navigate(base + "/patient.html?id=p1")
	row := `#alarm-list .alarm[data-alarm="a1"]`
	p.poll("alarm on the patient page", `document.querySelector('`+row+`')?.dataset.state === "active"`)
	if n := p.eval(`String(document.querySelectorAll('` + row + ` input').length)`); n != "1" {
		t.Fatalf("the alarm's form has %s inputs, want the reason alone", n)
	}
	p.do("acknowledge", slices.Concat([]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(row + ` button[data-op="acknowledge"]`))},
		fill(row+` input[name="why"]`, "at the bedside"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(row + ` form.reason button[type="submit"]`))})...)
	p.poll("acknowledged", `document.querySelector('`+row+`')?.dataset.state === "acknowledged"`)

	// The server ends the session (idle logoff on its side): the stream ends, the page finds the
	// session gone and shows the sign-in form; after signing in it is back where it was.
	c.endSessions("ann")
	p.poll("sign-in form after the session ended", signInShown+` && document.querySelector("#signin-message").textContent === "Your session ended; sign in again."`)
	if n := p.eval(`String(document.querySelectorAll("#alarm-list .alarm").length)`); n != "0" {
		t.Fatalf("%s alarms still in the page while signed out", n)
	}
	p.signIn("ann", "correct horse")
	p.poll("patient page resumed", `location.search === "?id=p1" && document.querySelector('`+row+`')?.dataset.state === "acknowledged"`)

	// Another team's patient: the refusal's detail in place of the page, and emergency access
	// with a reason of at least 10 characters.
	p.navigate(base + "/patient.html?id=p2")
	p.poll("access refused", `document.querySelector("#denied-detail").textContent.startsWith("Pat Two is not a patient of your care teams") && !document.querySelector("#break-glass-form").hidden && getComputedStyle(document.querySelector("main")).display === "none"`)
	p.do("too short a reason", slices.Concat(fill("#break-glass-reason", "urgent"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#break-glass"))})...)
	if v := p.eval(`String(document.querySelector("#break-glass-reason").validity.tooShort)`); v != "true" {
		t.Fatalf("a 6-character reason: tooShort %s", v)
	}
	p.do("break the glass", slices.Concat(fill("#break-glass-reason", "cardiac arrest on ward 3, covering"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#break-glass"))})...)
	p.poll("patient opened after breaking the glass", `document.querySelector("#pname").textContent === "Pat Two" && document.querySelector("#denied").hidden`)

	// Signing out ends the session on the server and shows the form.
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")))
	p.poll("signed out", signInShown+` && document.querySelector("#signin-message").textContent === "You signed out."`)
	if n := c.sessionsOf("ann"); n != 0 {
		t.Fatalf("ann has %d sessions after signing out", n)
	}

	// A second factor: the code field appears when the server asks for it.
	p.signIn("bob", "battery staple")
	p.poll("code asked for", `!document.querySelector("#code-row").hidden && document.activeElement.id === "code" && document.querySelector("#signin-message").textContent.startsWith("Enter the 6-digit code")`)
	p.do("wrong code", slices.Concat(fill("#code", "000000"), []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#signin"))})...)
	p.poll("wrong code refused", `document.querySelector("#signin-message").textContent === "That code is wrong or has expired."`)
	p.do("right code", slices.Concat(fill("#password", "battery staple"), fill("#code", "123456"),
		[]chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#signin"))})...)
	p.poll("signed in with a code", `document.querySelector("#whoami").textContent.includes("Bob Doctor") && document.querySelector("#pname").textContent === "Pat Two"`)

	// Sign out everywhere, then idle logoff: with a 3 s idle timeout and nobody at the keyboard
	// the page signs out by itself.
	p.do("sign out everywhere", chromedp.Click(chromedp.CSS("#signout-everywhere")))
	p.poll("signed out everywhere", signInShown+` && document.querySelector("#signin-message").textContent === "You signed out on every device."`)
	p.signIn("ida", "idle hands")
	p.poll("signed in", `document.querySelector("#whoami").textContent.includes("Ida Idle")`)
	p.poll("idle logoff", signInShown+` && document.querySelector("#signin-message").textContent === "Your session ended after 3 s without activity; sign in again."`)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bearer != 0 || c.badCSRF != 0 {
		t.Fatalf("%d requests with an Authorization header, %d writes without the session's CSRF token", c.bearer, c.badCSRF)
	}
	want := []string{"acknowledge at the bedside", "break-glass cardiac arrest on ward 3, covering"}
	if !slices.Equal(c.bodies, want) {
		t.Fatalf("writes %q, want %q", c.bodies, want)
	}
	if got := strings.Join(c.signouts, ","); got != "ann,bob,ida" {
		t.Fatalf("sign-outs %s, want ann,bob,ida", got)
	}
	t.Logf("%d sessions left", len(c.sessions))
}
