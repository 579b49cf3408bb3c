package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
)

// A patient's device readings and the nurse's charted consciousness and oxygen delivery
// make a NEWS2 score, stored as an observation and served by FHIR as a SNOMED-coded survey
// Observation. The inputs are the NHS Wales guide's "Carol" example, whose stated total of 6
// is wrong by the RCP chart: 37.5 °C scores 0, so the total is 5.
func TestNEWS2ScoredInThePipeline(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	at := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	vitals := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + at + `,"n":"9279-1","u":"/min","v":21},` +
		`{"n":"59408-5","u":"%","v":93},{"n":"8480-6","u":"mm[Hg]","v":120},{"n":"8867-4","u":"/min","v":95},{"n":"8310-5","u":"Cel","v":37.5}]`)
	var res map[string]any
	if code := e.call("POST", "/api/v1/ingest", dev.Token, vitals, &res); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if res["accepted"] != 5.0 {
		t.Fatalf("ingest: %v", res)
	}
	type obs struct {
		Points []struct{ Value float64 }
	}
	news2 := func() []float64 {
		var o obs
		if code := e.call("GET", "/api/v1/patients/"+patient+"/observations?code=1104051000000101&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), adminToken, nil, &o); code != 200 {
			t.Fatalf("observations: %d", code)
		}
		var vs []float64
		for _, x := range o.Points {
			vs = append(vs, x.Value)
		}
		return vs
	}
	time.Sleep(300 * time.Millisecond)
	if got := news2(); len(got) != 0 {
		t.Fatalf("scored %v without consciousness and oxygen delivery: a missing parameter must not count as 0", got)
	}
	// The nurse charts: alert, on room air. A bad entry is refused with its reason.
	var problem struct{ Detail string }
	if code := e.call("POST", "/api/v1/patients/"+patient+"/chart", adminToken, []byte(`[{"n":"acvpu","u":"{score}","v":7}]`), &problem); code != 422 {
		t.Fatalf("ACVPU 7: %d %+v", code, problem)
	}
	if code := e.call("POST", "/api/v1/patients/"+patient+"/chart", adminToken, []byte(`[{"n":"acvpu","u":"{score}","v":1},{"n":"3151-8","u":"L/min","v":0}]`), nil); code != 200 {
		t.Fatalf("chart: %d", code)
	}
	var got []float64
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = news2()
	}
	if len(got) != 1 || got[0] != 5 {
		t.Fatalf("NEWS2 observations %v, want one of 5", got)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID       string
				Category []struct{ Coding []struct{ Code string } }
				Code     struct {
					Coding []struct{ System, Code string }
				}
				Device        *struct{ Reference string }
				ValueQuantity struct {
					Value float64
					Code  string
				}
			}
		}
	}
	if code := e.call("GET", "/fhir/r4/Observation?patient="+patient+"&code=http://snomed.info/sct|1104051000000101", adminToken, nil, &bundle); code != 200 || len(bundle.Entry) != 1 {
		t.Fatalf("FHIR search: %d %+v", code, bundle)
	}
	r := bundle.Entry[0].Resource
	if r.Category[0].Coding[0].Code != "survey" || r.ValueQuantity.Value != 5 || r.ValueQuantity.Code != "{score}" || r.Device != nil {
		t.Fatalf("FHIR NEWS2 Observation %+v", r)
	}
	var read struct{ ID, ResourceType string }
	if code := e.call("GET", "/fhir/r4/Observation/"+r.ID, adminToken, nil, &read); code != 200 || read.ID != r.ID {
		t.Fatalf("FHIR read of %s: %d %+v", r.ID, code, read)
	}
}

// Each patient is scored on the NEWS2 SpO2 scale of their record. The same readings, SpO2
// 90 % on 2 L/min of oxygen with every other parameter scoring 0, make 5 on scale 1 (90 %
// scores 3, oxygen 2) and 2 on scale 2 (88–92 % scores 0), set through the REST API; the
// live news2 event says which scale the score stands on.
func TestNEWS2PerPatientScaleInThePipeline(t *testing.T) {
	e := start(t)
	one, dev1 := e.ward()
	two, dev2 := e.ward()
	var p struct {
		SpO2Scale int `json:"spo2Scale"`
	}
	if code := e.call("PATCH", "/api/v1/patients/"+two, adminToken, []byte(`{"spo2Scale":2}`), &p); code != 200 || p.SpO2Scale != 2 {
		t.Fatalf("PATCH spo2Scale 2: %d %+v", code, p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/patients/"+two+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scored := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if ev, ok := strings.CutPrefix(line, "event: "); ok {
				event = ev
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && event == "news2" {
				var s struct {
					Scale      int
					Assessment struct{ Result *struct{ Total int } }
				}
				if json.Unmarshal([]byte(data), &s) == nil && s.Assessment.Result != nil {
					scored <- data
					return
				}
			}
		}
	}()

	at := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	for _, x := range []struct {
		patient string
		dev     device
	}{{one, dev1}, {two, dev2}} {
		vitals := []byte(`[{"bn":"urn:dev:id:` + x.dev.ID + `:","bt":` + at + `,"n":"9279-1","u":"/min","v":18},` +
			`{"n":"59408-5","u":"%","v":90},{"n":"8480-6","u":"mm[Hg]","v":120},{"n":"8867-4","u":"/min","v":80},{"n":"8310-5","u":"Cel","v":37.0}]`)
		if code := e.call("POST", "/api/v1/ingest", x.dev.Token, vitals, nil); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
		if code := e.call("POST", "/api/v1/patients/"+x.patient+"/chart", adminToken, []byte(`[{"n":"acvpu","u":"{score}","v":1},{"n":"3151-8","u":"L/min","v":2}]`), nil); code != 200 {
			t.Fatalf("chart: %d", code)
		}
	}
	news2 := func(patient string) []float64 {
		var o struct {
			Points []struct{ Value float64 }
		}
		if code := e.call("GET", "/api/v1/patients/"+patient+"/observations?code=1104051000000101&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), adminToken, nil, &o); code != 200 {
			t.Fatalf("observations: %d", code)
		}
		var vs []float64
		for _, x := range o.Points {
			vs = append(vs, x.Value)
		}
		return vs
	}
	var got1, got2 []float64
	for deadline := time.Now().Add(10 * time.Second); (len(got1) == 0 || len(got2) == 0) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got1, got2 = news2(one), news2(two)
	}
	if len(got1) != 1 || got1[0] != 5 {
		t.Errorf("scale 1 patient: NEWS2 observations %v, want one of 5", got1)
	}
	if len(got2) != 1 || got2[0] != 2 {
		t.Errorf("scale 2 patient: NEWS2 observations %v, want one of 2", got2)
	}
	select {
	case data := <-scored:
		if !strings.Contains(data, `"scale":2`) || !strings.Contains(data, `"total":2`) {
			t.Errorf("news2 event of the scale 2 patient: %s", data)
		}
	case <-ctx.Done():
		t.Fatal("no complete news2 event on the scale 2 patient's live stream")
	}
}

// The alarm engine's news2 scores SpO2 on each patient's scale, which the NEWS2 scorer tells
// it: the same readings on air (RR 21, SpO2 89 %, HR 92, the rest scoring 0) are 6 for a
// scale 1 patient, who alarms at 5, and 3 for a scale 2 patient (88–92 % is their target),
// who never does, not even before the scale is known.
func TestNEWS2AlarmOnThePatientsScale(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	const yaml = `version: 1
rules:
  - id: news2-medium
    kind: condition
    levels: [{when: "news2.total >= 5", priority: medium}]
    clear_when: "news2.total <= 3"
    delay: 0s
    message: "NEWS2 {value}"
`
	if err := os.WriteFile(rules, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(c *node.Config) { c.Alarms = node.AlarmsConfig{RulesFile: rules} })
	one, dev1 := e.ward()
	two, dev2 := e.ward()
	if code := e.call("PATCH", "/api/v1/patients/"+two, adminToken, []byte(`{"spo2Scale":2}`), nil); code != 200 {
		t.Fatalf("PATCH spo2Scale 2: %d", code)
	}
	start := time.Now().Add(-time.Minute).Unix()
	send := func(i int64) {
		for _, dev := range []device{dev1, dev2} {
			vitals := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(start+i, 10) + `,"n":"9279-1","u":"/min","v":21},` +
				`{"n":"59408-5","u":"%","v":89},{"n":"8480-6","u":"mm[Hg]","v":120},{"n":"8867-4","u":"/min","v":92},{"n":"8310-5","u":"Cel","v":37.0}]`)
			if code := e.call("POST", "/api/v1/ingest", dev.Token, vitals, nil); code != 200 {
				t.Fatalf("ingest: %d", code)
			}
		}
	}
	type alarmList struct {
		Alarms []struct {
			Rule  string
			Value float64
		}
	}
	alarms := func(patient string) alarmList {
		var l alarmList
		e.call("GET", "/api/v1/alarms?patient="+patient, adminToken, nil, &l)
		return l
	}
	var i int64
	for deadline := time.Now().Add(10 * time.Second); len(alarms(one).Alarms) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no news2 alarm for the scale 1 patient")
		}
		send(i)
		time.Sleep(100 * time.Millisecond)
	}
	// A few more readings for both, now that the engine knows both scales.
	for range 3 {
		send(i)
		i++
	}
	if got := alarms(two).Alarms; len(got) != 0 {
		t.Errorf("scale 2 patient: %+v, want no alarm", got)
	}
	if got := alarms(one).Alarms; len(got) != 1 || got[0].Rule != "news2-medium" || got[0].Value != 6 {
		t.Errorf("scale 1 patient: %+v, want one news2-medium alarm at 6", got)
	}
}
