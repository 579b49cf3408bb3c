package web_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
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

func TestWardAndPatientPages(t *testing.T) {
	bin := chromium(t)
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", AdminToken: "tok",
		NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	beds, err := sim.Provision(context.Background(), sim.API{Base: base, Token: "tok"}, []sim.Bed{
		{Scenario: "stable-adult", Seed: 1}, {Scenario: "af-onset", Seed: 2, Compress: 8}, {Scenario: "sepsis", Seed: 3, Compress: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(simCtx, sim.Options{Broker: n.MQTTAddr()}, beds, &sim.Stats{}) }()
	defer func() { stopSim(); <-simDone }()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser and must not carry a timeout; later ones do.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#token=tok")); err != nil {
		t.Fatalf("open ward page: %v", err)
	}
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(within(10*time.Second), chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(within(30*time.Second), chromedp.Poll[bool](expr)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// The ward: a tile per patient, whose numbers change as readings arrive.
	hr := `document.querySelector('.tile[data-patient="` + beds[0].Patient + `"] [data-code="8867-4"] .value').textContent`
	poll("ward tiles", `document.querySelectorAll('.tile').length === `+strconv.Itoa(len(beds)))
	poll("heart rate on the ward", hr+` !== "–"`)
	first := eval(hr)
	if _, err := strconv.Atoi(first); err != nil {
		t.Fatalf("heart rate shown as %q", first)
	}
	sum := `[...document.querySelectorAll('.tile .value')].map(e => e.textContent).join(",")`
	before := eval(sum)
	poll("ward updates", sum+` !== `+strconv.Quote(before))

	// The patient page: the ECG strip draws a trace on its paper, and trends appear.
	inked := `(() => { const c = document.querySelector('#ecg canvas'); if (!c) return 0;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] < 80 && d[i+1] < 80 && d[i+2] < 80) n++;
		return n; })()`
	if err := chromedp.Do(within(20*time.Second), chromedp.Navigate(base+"/patient.html?id="+beds[1].Patient)); err != nil {
		t.Fatalf("open patient page: %v", err)
	}
	poll("ECG strip drawn", inked+` > 500`)
	poll("trend charts", `document.querySelectorAll('#trends .uplot').length >= 2`)
	t.Logf("ward heart rate %s; ECG strip %s dark pixels; %s trend charts", first, eval(`String(`+inked+`)`), eval(`String(document.querySelectorAll('#trends .uplot').length)`))
}
