package node_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCGMAlertsFromLiveReadings: CGM readings arriving over HTTP ingest drive the patient's
// alerts, which appear on the live stream and in the API.
func TestCGMAlertsFromLiveReadings(t *testing.T) {
	e := start(t)
	var p struct{ ID string }
	e.call("POST", "/api/v1/patients", adminToken, map[string]string{"name": "T1D"}, &p)
	var dev device
	if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"patient": p.ID, "kind": "cgm"}, &dev); c != 201 {
		t.Fatal(c)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/patients/"+p.ID+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	alerts := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		ev := ""
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "event: ") {
				ev = strings.TrimPrefix(line, "event: ")
			}
			if strings.HasPrefix(line, "data: ") && ev == "cgm-alert" {
				alerts <- line
			}
		}
	}()
	// A fall from 160 to 50 mg/dL over an hour, one reading every 5 minutes, one pack each.
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i, v := range []float64{160, 152, 145, 138, 130, 121, 112, 102, 92, 82, 72, 62, 52} {
		pack := fmt.Sprintf(`[{"n":"cgm","u":"mg/dL","v":%g,"t":%d}]`, v, base.Add(time.Duration(i)*5*time.Minute).Unix())
		var res struct{ Accepted int }
		if c := e.call("POST", "/api/v1/ingest", dev.Token, []byte(pack), &res); c != 200 || res.Accepted != 1 {
			t.Fatalf("reading %d: %d %+v", i, c, res)
		}
	}
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second) // 13 readings through ingest, bus, analysis and SSE on a busy CI machine
	for !(seen["low"] && seen["predicted_low"] && seen["urgent_low"]) {
		select {
		case a := <-alerts:
			for _, k := range []string{"urgent_low", "predicted_low", "low"} {
				if strings.Contains(a, `"kind":"`+k+`"`) {
					seen[k] = true
				}
			}
		case <-deadline:
			t.Fatalf("alerts on the stream: %v", seen)
		}
	}
	var list struct {
		Alerts []struct {
			Kind string
			Time time.Time
			MgdL float64
		}
	}
	e.call("GET", "/api/v1/patients/"+p.ID+"/cgm/alerts", adminToken, nil, &list)
	kinds := map[string]bool{}
	for _, a := range list.Alerts {
		kinds[a.Kind] = true
	}
	if !kinds["predicted_low"] || !kinds["low"] || !kinds["urgent_low"] {
		t.Fatalf("alerts listed: %+v", list.Alerts)
	}
	// The predicted low came before the low it predicted.
	var pl, lo time.Time
	for _, a := range list.Alerts {
		if a.Kind == "predicted_low" && pl.IsZero() {
			pl = a.Time
		}
		if a.Kind == "low" && lo.IsZero() {
			lo = a.Time
		}
	}
	if !pl.Before(lo) {
		t.Fatalf("predicted low at %s, low at %s", pl, lo)
	}
}

// TestCGMAlertsOnThePatientsOwnLimits: a patient whose clinician set a low of 80 mg/dL is
// alerted at 76 through the live pipeline; a patient on the defaults (low 70) only at 65.
func TestCGMAlertsOnThePatientsOwnLimits(t *testing.T) {
	e := start(t)
	ingest := func(name string, limits map[string]float64, values ...float64) string {
		t.Helper()
		body := map[string]any{"name": name}
		if limits != nil {
			body["cgmLimits"] = limits
		}
		var p struct{ ID string }
		if c := e.call("POST", "/api/v1/patients", adminToken, body, &p); c != 201 {
			t.Fatalf("patient %s: %d", name, c)
		}
		var dev device
		if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"patient": p.ID, "kind": "cgm"}, &dev); c != 201 {
			t.Fatal(c)
		}
		base := time.Now().Add(-time.Hour).Truncate(time.Minute)
		for i, v := range values {
			pack := fmt.Sprintf(`[{"n":"cgm","u":"mg/dL","v":%g,"t":%d}]`, v, base.Add(time.Duration(i)*5*time.Minute).Unix())
			if c := e.call("POST", "/api/v1/ingest", dev.Token, []byte(pack), nil); c != 200 {
				t.Fatalf("reading %d: %d", i, c)
			}
		}
		return p.ID
	}
	firstLow := func(patient string) float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var list struct {
				Alerts []struct {
					Kind string
					MgdL float64
				}
			}
			e.call("GET", "/api/v1/patients/"+patient+"/cgm/alerts", adminToken, nil, &list)
			for _, a := range list.Alerts {
				if a.Kind == "low" {
					return a.MgdL
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no low alert for %s", patient)
		return 0
	}
	own := ingest("Own limits", map[string]float64{"urgentLow": 60, "low": 80, "high": 180, "urgentHigh": 250}, 90, 84, 80, 76, 76, 76, 76, 65)
	defaults := ingest("Defaults", nil, 90, 84, 80, 76, 76, 76, 76, 65)
	if v := firstLow(own); v != 76 {
		t.Errorf("low of 80: first low alert at %v mg/dL, want 76", v)
	}
	if v := firstLow(defaults); v != 65 {
		t.Errorf("default low of 70: first low alert at %v mg/dL, want 65", v)
	}
}
