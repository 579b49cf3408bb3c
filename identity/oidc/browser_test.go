package oidc_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/identity/oidc"
)

// chromium finds Debian's Chromium; the tests never download a browser.
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("IOMT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("browser tests need Chromium: apt-get install chromium (or set IOMT_CHROMIUM)")
	return ""
}

// TestChromiumSignsInThroughTheProvidersLoginPage: a real browser goes from the RP's login
// route to the provider's login form, types a password, and comes back signed in (the login
// cookie goes with the provider's redirect, as SameSite=Lax lets it).
func TestChromiumSignsInThroughTheProvidersLoginPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	bin := chromium(t)
	h := newHarness(t, nil)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate(h.srv.URL+"/auth/oidc/login?next=/ward/3")); err != nil {
		t.Fatalf("open the login route: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(tctx,
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "correct horse battery staple"),
		chromedp.Click(chromedp.CSS(`#login`)),
	); err != nil {
		t.Fatalf("sign in at the provider: %v", err)
	}
	// The browser navigates through redirects; wait for the RP to see the callback.
	var id oidc.Identity
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if id, err = h.result(); err == nil || !strings.Contains(err.Error(), "not reached") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if id.Login != "alice" || id.ReturnTo != "/ward/3" || !slices.Equal(id.Roles, []iomt.Role{iomt.RoleClinician}) {
		t.Fatalf("identity %+v", id)
	}
	if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(`body`))); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(tctx, chromedp.Evaluate[string](`location.pathname + " " + document.body.innerText`))
	if err != nil || !strings.HasPrefix(body, "/auth/oidc/callback ") || !strings.Contains(body, `"Login":"alice"`) {
		t.Fatalf("page %q %v", body, err)
	}
}
