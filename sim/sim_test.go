package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/sim"
)

func TestSimFeedsServer(t *testing.T) {
	n, err := node.Start(context.Background(), node.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: "test-bootstrap-token"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	beds, err := sim.Provision(ctx, sim.API{Base: "http://" + n.HTTPAddr(), Token: "test-bootstrap-token"}, []sim.Bed{
		{Scenario: "stable-adult", Seed: 1},
		{Scenario: "sepsis", Seed: 2, Lead: 20 * time.Minute, Speed: 300},
		{Scenario: "t1d-nocturnal-hypo", Seed: 3, Lead: 2 * time.Hour, Speed: 1800},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cbor := range []bool{false, true} {
		var st sim.Stats
		rctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		err := sim.Run(rctx, sim.Options{Broker: n.MQTTAddr(), CBOR: cbor, Tick: 250 * time.Millisecond}, beds, &st)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages.Load() == 0 || st.Refused.Load() != 0 || st.Failed.Load() != 0 {
			t.Fatalf("cbor=%v: messages %d refused %d failed %d partial %d", cbor, st.Messages.Load(), st.Refused.Load(), st.Failed.Load(), st.Partial.Load())
		}
		t.Logf("cbor=%v: %d messages, %d samples, %d partly refused", cbor, st.Messages.Load(), st.Samples.Load(), st.Partial.Load())
	}
	// The stable patient's ECG and heart rate are stored.
	now := time.Now()
	ws, err := n.Store().Waveforms(ctx, iomt.WaveformQuery{Patient: beds[0].Patient, Code: "MDC_ECG_ELEC_POTL_II", From: now.Add(-time.Minute), To: now.Add(time.Minute)})
	if err != nil || len(ws) == 0 {
		t.Fatalf("no ECG stored: %v", err)
	}
	obs, err := n.Store().Latest(ctx, beds[1].Patient)
	if err != nil || len(obs) < 3 {
		t.Fatalf("sepsis patient vitals: %v %v", obs, err)
	}
	// The diabetic's fast clock put hours of CGM readings in the store.
	cgm, err := n.Store().Observations(ctx, iomt.ObservationQuery{Patient: beds[2].Patient, Code: "99504-3", From: now.Add(-3 * time.Hour), To: now.Add(time.Minute)})
	if err != nil || len(cgm) < 10 {
		t.Fatalf("cgm readings: %d %v", len(cgm), err)
	}

	// The API reports them as CGM metrics and as the AGP page.
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer test-bootstrap-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/v1/patients/" + beds[2].Patient + "/cgm?tz=Europe/London")
	var rep struct {
		Summary struct {
			Readings int
			Mean     float64
		}
		AGP   []struct{ P50 float64 }
		Daily []struct{ Readings []any }
	}
	if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil || rep.Summary.Readings != len(cgm) || rep.Summary.Mean < 40 || rep.Summary.Mean > 400 ||
		len(rep.AGP) == 0 || len(rep.Daily) == 0 {
		t.Fatalf("cgm report: %d %v %.300s", code, err, body)
	}
	// Only "to", as a date: the 14 days up to the end of that day, not the last hour.
	code, body = get("/api/v1/patients/" + beds[2].Patient + "/cgm?to=" + now.Format(time.DateOnly))
	rep.Summary.Readings = 0
	if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil || rep.Summary.Readings != len(cgm) {
		t.Fatalf("cgm report to a date: %d %v %.300s (want all %d readings)", code, err, body, len(cgm))
	}
	if code, body := get("/api/v1/patients/" + beds[2].Patient + "/cgm?format=html"); code != 200 || !strings.Contains(body, "<svg") {
		t.Fatalf("AGP page: %d %.200s", code, body)
	}
	if code, body := get("/api/v1/patients/" + beds[0].Patient + "/cgm"); code != 404 || !strings.Contains(body, "no CGM readings") {
		t.Fatalf("patient without CGM: %d %s", code, body)
	}
	if code, body := get("/api/v1/patients/" + beds[2].Patient + "/cgm?tz=Mars/Olympus"); code != 400 || !strings.Contains(body, "IANA time zone") {
		t.Fatalf("bad time zone: %d %s", code, body)
	}
}
