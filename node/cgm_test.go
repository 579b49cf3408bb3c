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
