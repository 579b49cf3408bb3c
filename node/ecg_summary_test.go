package node_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/watch"
)

// An ECG patch's lead, sent as SenML, is summarised minute by minute: the heart rate measured
// from its R-R intervals and the SDNN are stored under the watcher's device, readable through
// the REST API and through FHIR as "procedure" Observations of their own codes, one reading
// per minute, and NEWS2 does not take them for the devices' heart rate.
func TestECGMinutesStoredAndServed(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	sc, err := sensing.LoadScenario(strings.NewReader(`
name: sinus
baseline: {hr: 72, pvc: 0}
devices:
  - kind: ecg-patch
    first: 0s
`))
	if err != nil {
		t.Fatal(err)
	}
	// Three and a half minutes of signal from a minute boundary, in the recent past: minutes
	// t0, t0+1m and t0+2m are complete and the AF decision has passed their ends.
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	p := sensing.NewPatient(sc, 5, t0)
	for now := t0.Add(time.Second); !now.After(t0.Add(210 * time.Second)); now = now.Add(time.Second) {
		for _, em := range p.Advance(now) {
			for _, c := range em.Chunks {
				if c.Code != sensing.CodeECGII || len(c.Values) < 2 {
					continue // a single sample has no period: not a waveform ingest stores
				}
				var b strings.Builder
				fmt.Fprintf(&b, `[{"bn":"urn:dev:id:%s:","bt":%.3f,"n":"%s","u":"mV","t":0,"v":%.3f}`, dev.ID, float64(c.Start.UnixMilli())/1000, c.Code, c.Values[0])
				for i, v := range c.Values[1:] {
					fmt.Fprintf(&b, `,{"n":"%s","t":%.3f,"v":%.3f}`, c.Code, float64(i+1)*c.Period.Seconds(), v)
				}
				b.WriteString("]")
				if code := e.call("POST", "/api/v1/ingest", dev.Token, []byte(b.String()), nil); code != 200 {
					t.Fatalf("ingest of ECG at %v: %d", c.Start, code)
				}
			}
		}
	}

	type points struct {
		Points []struct {
			Time  time.Time
			Value float64
		}
	}
	read := func(code string) points {
		var o points
		if c := e.call("GET", "/api/v1/patients/"+patient+"/observations?code="+code+"&from="+t0.Add(-time.Hour).UTC().Format(time.RFC3339), adminToken, nil, &o); c != 200 {
			t.Fatalf("observations of %s: %d", code, c)
		}
		return o
	}
	var hr points
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if hr = read(watch.ECGHeartRateCode); len(hr.Points) >= 3 {
			break
		}
	}
	if len(hr.Points) != 3 {
		t.Fatalf("ECG heart rates %+v, want one for each of the 3 complete minutes", hr.Points)
	}
	for i, pt := range hr.Points {
		if !pt.Time.Equal(t0.Add(time.Duration(i)*time.Minute)) || math.Abs(pt.Value-72) > 5 {
			t.Errorf("ECG heart rate %d: %+v, want about 72/min at %v", i, pt, t0.Add(time.Duration(i)*time.Minute))
		}
	}
	var sdnn points
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if sdnn = read(watch.ECGSDNNCode); len(sdnn.Points) >= 3 {
			break
		}
	}
	if len(sdnn.Points) != 3 || sdnn.Points[0].Value <= 0 || sdnn.Points[0].Value > 200 {
		t.Errorf("SDNN %+v, want 3 of a few tens of ms", sdnn.Points)
	}
	if pulse := read("8867-4"); len(pulse.Points) != 0 {
		t.Errorf("heart rate 8867-4 %+v: the ECG watcher's readings have a code of their own", pulse.Points)
	}

	var bundle struct {
		Total int
		Entry []struct {
			Resource struct {
				Category []struct{ Coding []struct{ Code string } }
				Code     struct {
					Coding []struct{ System, Code string }
				}
				EffectiveDateTime string
				ValueQuantity     struct {
					Value float64
					Code  string
				}
			}
		}
	}
	if c := e.call("GET", "/fhir/r4/Observation?patient="+patient+"&code=http://loinc.org|"+watch.ECGHeartRateCode, adminToken, nil, &bundle); c != 200 || len(bundle.Entry) != 3 {
		t.Fatalf("FHIR search: %d %+v", c, bundle)
	}
	for _, en := range bundle.Entry {
		r := en.Resource
		if len(r.Category) == 0 || r.Category[0].Coding[0].Code != "procedure" || r.Code.Coding[0].System != "http://loinc.org" ||
			r.Code.Coding[0].Code != watch.ECGHeartRateCode || r.ValueQuantity.Code != "/min" || math.Abs(r.ValueQuantity.Value-72) > 5 {
			t.Errorf("FHIR ECG heart rate %+v", r)
		}
	}
	bundle.Entry = nil
	if c := e.call("GET", "/fhir/r4/Observation?patient="+patient+"&code=http://loinc.org|"+watch.ECGSDNNCode, adminToken, nil, &bundle); c != 200 || len(bundle.Entry) != 3 ||
		bundle.Entry[0].Resource.Category[0].Coding[0].Code != "procedure" || bundle.Entry[0].Resource.ValueQuantity.Code != "ms" {
		t.Fatalf("FHIR search of SDNN: %d %+v", c, bundle)
	}
}
