package fhir_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/fhir"
)

func TestMetadataTellsTheTruth(t *testing.T) {
	f := newFixture(t)
	// No token needed for discovery.
	resp, err := http.Get(f.url("metadata"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	recordEmitted(cs)
	if cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %v", cs)
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	// Every advertised search parameter is accepted; an unadvertised one is refused.
	advertised := map[string][]string{}
	for _, r := range rest["resource"].([]any) {
		res := r.(map[string]any)
		typ := res["type"].(string)
		var inter []string
		for _, i := range res["interaction"].([]any) {
			inter = append(inter, i.(map[string]any)["code"].(string))
		}
		if !slices.Contains(inter, "read") || !slices.Contains(inter, "search-type") {
			t.Errorf("%s: interactions %v", typ, inter)
		}
		for _, sp := range res["searchParam"].([]any) {
			name := sp.(map[string]any)["name"].(string)
			q := url.Values{name: {"x"}}
			advertised[typ] = append(advertised[typ], name)
			switch name {
			case "_count", "_offset":
				q.Set(name, "1")
			case "_summary":
				q.Set(name, "count")
			case "_total":
				q.Set(name, "accurate")
			case "_sort":
				q.Set(name, "-date")
			case "date", "_lastUpdated", "birthdate":
				q.Set(name, "ge2026")
			}
			if typ == "Observation" && name != "patient" && name != "subject" {
				q.Set("patient", p1)
			}
			st, m, _ := f.do(t, "GET", typ+"?"+q.Encode(), nil)
			if st == http.StatusBadRequest {
				if code, _ := issue(t, m); code == "not-supported" {
					t.Errorf("%s?%s: advertised parameter refused: %v", typ, q.Encode(), m)
				}
			}
		}
		st, _, _ := f.do(t, "GET", typ+"?no-such-param=1", nil)
		if st != http.StatusBadRequest {
			t.Errorf("%s?no-such-param: status %d, want 400", typ, st)
		}
		canWrite := slices.Contains(inter, "create")
		st, _, _ = f.do(t, "POST", typ, map[string]any{"resourceType": typ})
		if canWrite != (st != http.StatusMethodNotAllowed) {
			t.Errorf("%s create: advertised %v, status %d", typ, canWrite, st)
		}
	}
	// And the other way round: what the server implements (as the handler's parameter lists
	// and the README say) is advertised. _format and _pretty change only the rendering and
	// are not search parameters.
	common := []string{"_id", "_count", "_summary", "_total", "_offset"}
	for typ, params := range map[string][]string{
		"Patient":      {"identifier", "name", "birthdate"},
		"Device":       {"identifier", "patient", "type"},
		"DeviceMetric": {"source", "type"},
		"Observation":  {"patient", "subject", "code", "combo-code", "category", "date", "_lastUpdated", "device", "_sort"},
	} {
		for _, p := range append(params, common...) {
			if !slices.Contains(advertised[typ], p) {
				t.Errorf("%s: %s is implemented but not advertised", typ, p)
			}
		}
	}
	// Device create is conditional on the identifier, as Patient's is.
	for _, r := range rest["resource"].([]any) {
		res := r.(map[string]any)
		if typ := res["type"]; (typ == "Patient" || typ == "Device") && res["conditionalCreate"] != true {
			t.Errorf("%s: conditionalCreate not advertised", typ)
		}
	}
}

func TestAuthAndErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		hdr          []string
		status       int
		code         string
	}{
		{"GET", "Patient/" + p1, []string{"Authorization", ""}, 401, "login"},
		{"GET", "Patient/" + p1, []string{"Authorization", "Bearer wrong"}, 401, "login"},
		{"GET", "Patient/nobody", nil, 404, "not-found"},
		{"GET", "Observation/AQ-not-an-id", nil, 404, "not-found"},
		{"GET", "Encounter/1", nil, 404, "not-supported"},
		{"DELETE", "Patient/" + p1, nil, 405, "not-supported"},
		{"GET", "Patient/" + p1 + "?_format=xml", nil, 406, "not-supported"},
		{"GET", "Patient/" + p1, []string{"Accept", "application/fhir+xml"}, 406, "not-supported"},
		{"GET", "Observation/$lastn", nil, 400, "required"},
		{"GET", "Observation?patient=" + p1 + "&date=2026-13", nil, 400, "value"},
		{"GET", "Observation?patient=" + p1 + "&date=ap2026", nil, 400, "not-supported"},
		{"GET", "Observation?patient=" + p1 + "&_include=Observation:patient", nil, 400, "not-supported"},
		{"GET", "Observation?patient=" + p1 + "&_sort=code", nil, 400, "not-supported"},
		{"GET", "Patient/" + p1 + "/_history", nil, 404, "not-supported"},
		{"POST", "", nil, 405, "not-supported"},
		{"GET", "Observation/$everything", nil, 404, "not-supported"},
	} {
		st, m, _ := f.do(t, tc.method, tc.path, nil, tc.hdr...)
		if st != tc.status {
			t.Errorf("%s %s: status %d, want %d: %v", tc.method, tc.path, st, tc.status, m)
			continue
		}
		if code, _ := issue(t, m); code != tc.code {
			t.Errorf("%s %s: issue code %q, want %q", tc.method, tc.path, code, tc.code)
		}
	}
	// Lenient handling ignores what it does not know, and says so by leaving it out of self.
	st, m, _ := f.do(t, "GET", "Observation?patient="+p1+"&code=8310-5&frobnicate=1", nil, "Prefer", "handling=lenient")
	if st != 200 || total(m) != 8 || strings.Contains(link(m, "self"), "frobnicate") {
		t.Errorf("lenient: %d total %d self %s", st, total(m), link(m, "self"))
	}
}

func TestPatientAndDeviceReadSearch(t *testing.T) {
	f := newFixture(t)
	p := f.get(t, "Patient/"+p1)
	if p["birthDate"] != "1990-05-01" || p["name"].([]any)[0].(map[string]any)["text"] != "Ada Lovelace" {
		t.Errorf("patient: %v", p)
	}
	id := p["identifier"].([]any)[0].(map[string]any)
	if id["system"] != "urn:iomt:mrn" || id["value"] != "MRN-001" {
		t.Errorf("identifier: %v", id)
	}
	for q, want := range map[string]int{
		"identifier=MRN-002":              1,
		"identifier=urn:iomt:mrn|MRN-001": 1,
		"identifier=urn:other|MRN-001":    0,
		"name=ada":                        1,
		"name=hopper,lovelace":            2,
		"birthdate=lt1960":                1,
		"birthdate=1990-05":               1,
		"_id=" + p1 + "," + p2:            2,
		"":                                2,
	} {
		if b := f.get(t, "Patient?"+q); total(b) != want || len(entries(b)) != want {
			t.Errorf("Patient?%s: total %d, want %d", q, total(b), want)
		}
	}
	d := f.get(t, "Device/"+dOx)
	if d["patient"].(map[string]any)["reference"] != "Patient/"+p1 || d["type"].(map[string]any)["text"] != "pulse-oximeter" {
		t.Errorf("device: %v", d)
	}
	if prop := d["property"].([]any)[0].(map[string]any); prop["valueQuantity"].([]any)[0].(map[string]any)["value"] != 87.0 {
		t.Errorf("battery: %v", prop)
	}
	for q, want := range map[string]int{"patient=" + p1: 3, "patient=Patient/" + p1: 3, "type=pulse-oximeter": 1, "type=urn:iomt:device-kind|scale": 1, "": 4} {
		if b := f.get(t, "Device?"+q); total(b) != want {
			t.Errorf("Device?%s: total %d, want %d", q, total(b), want)
		}
	}
	ms := f.get(t, "DeviceMetric?source=Device/"+dOx)
	if total(ms) != 3 {
		t.Fatalf("metrics of the oximeter: %d", total(ms))
	}
	for _, m := range entries(ms) {
		if got := f.get(t, "DeviceMetric/"+m["id"].(string)); got["id"] != m["id"] {
			t.Errorf("read metric %s: %v", m["id"], got)
		}
	}
	if b := f.get(t, "DeviceMetric?type=urn:iso:std:iso:11073:10101|150456"); total(b) != 2 {
		t.Errorf("SpO2 metrics: %d (bedside monitor and oximeter)", total(b))
	}
}

func codings(o map[string]any, path ...string) []string {
	var out []string
	cc := o["code"].(map[string]any)
	for _, c := range cc["coding"].([]any) {
		m := c.(map[string]any)
		out = append(out, m["system"].(string)+"|"+m["code"].(string))
	}
	return out
}

func TestObservationSearch(t *testing.T) {
	f := newFixture(t)
	base := "Observation?patient=" + p1
	for q, want := range map[string]int{
		"&code=8867-4":                                                   f.nHR,
		"&code=http://loinc.org|8867-4":                                  f.nHR, // HR only: no pulse-rate readings here
		"&code=2708-6":                                                   f.nHR, // the SpO2 readings carry the profile's 2708-6
		"&code=urn:iso:std:iso:11073:10101|150456":                       f.nHR,
		"&code=8867-4,9279-1":                                            2 * f.nHR,
		"&code=85354-9":                                                  f.nBP,
		"&code=8480-6":                                                   1, // the lone systolic
		"&combo-code=8480-6":                                             f.nBP + 1,
		"&code=8310-5&date=ge2026-11-20T10:30:00Z":                       6,
		"&code=8310-5&date=gt2026-11-20T10:30:00Z":                       5,
		"&code=8310-5&date=gt2026-11-20T10:30":                           5,
		"&code=8310-5&date=lt2026-11-20T10:30:00Z":                       2,
		"&code=8310-5&date=le2026-11-20T10:30:00Z":                       3,
		"&code=8310-5&date=eq2026-11-20T10:30:00Z":                       1,
		"&code=8310-5&date=ne2026-11-20T10:30:00Z":                       7,
		"&code=8310-5&date=2026-11":                                      8,
		"&code=8310-5&date=2026-10":                                      0,
		"&code=8310-5&date=ge2026-11-20T10:15Z&date=lt2026-11-20T11:00Z": 3,
		"&code=8310-5&date=ge2026-11-20T11:15:00%2B01:00":                7, // 10:15 UTC
		"&code=8310-5&_lastUpdated=ge2026-11-20T11:00:00Z":               4,
		"&category=vital-signs&date=ge2026-11-20T11:59:00Z":              3, // HR, RR, SpO2 of the last minute
		"&category=laboratory":                                           1,
		"&category=activity":                                             2, // steps and the fall
		"&category=survey":                                               2, // charted ACVPU and the NEWS2 score
		"&category=therapy":                                              1, // charted oxygen flow
		"&code=http://snomed.info/sct|1104051000000101":                  1,
		"&category=procedure":                                            f.nECGWindows + f.nPlethWindows,
		"&category=http://terminology.hl7.org/CodeSystem/observation-category|procedure": f.nECGWindows + f.nPlethWindows,
		"&device=Device/" + dOx + "&category=vital-signs":                                f.nHR,
		"&code=MDC_ATTR_VAL_BATT_CHARGE":                                                 0, // device status is not an Observation
	} {
		b := f.get(t, base+q)
		if total(b) != want {
			t.Errorf("%s: total %d, want %d", q, total(b), want)
		}
	}
	// subject with a full reference, and a patient who is not there.
	if b := f.get(t, "Observation?subject=Patient/"+p2); total(b) != 1 {
		t.Errorf("P2: %d", total(b))
	}
	if b := f.get(t, "Observation?subject=Patient/nobody"); total(b) != 0 {
		t.Errorf("nobody: %d", total(b))
	}
	// _sort=-date is newest first; the default is oldest first.
	desc := entries(f.get(t, base+"&code=8310-5&_sort=-date"))
	asc := entries(f.get(t, base+"&code=8310-5"))
	if len(desc) != 8 || desc[0]["effectiveDateTime"] != asc[7]["effectiveDateTime"] || desc[0]["effectiveDateTime"].(string) <= desc[7]["effectiveDateTime"].(string) {
		t.Errorf("sort: first desc %v, last asc %v", desc[0]["effectiveDateTime"], asc[7]["effectiveDateTime"])
	}
	// _summary=count gives the total only.
	if b := f.get(t, base+"&code=8867-4&_summary=count"); total(b) != f.nHR || b["entry"] != nil {
		t.Errorf("_summary=count: %v", b)
	}
}

func TestPagingFollowsLinks(t *testing.T) {
	f := newFixture(t)
	b := f.get(t, "Observation?patient="+p1+"&category=vital-signs&_count=37&_sort=-date")
	want := total(b)
	seen := map[string]bool{}
	pages := 0
	var prev string
	for {
		pages++
		for _, e := range entries(b) {
			id := e["id"].(string)
			if seen[id] {
				t.Fatalf("id %s on two pages", id)
			}
			seen[id] = true
			if prev != "" && e["effectiveDateTime"].(string) > prev {
				t.Fatalf("page %d out of order", pages)
			}
			prev = e["effectiveDateTime"].(string)
		}
		next := link(b, "next")
		if next == "" {
			break
		}
		if pages > 1 && link(b, "previous") == "" {
			t.Errorf("page %d has no previous link", pages)
		}
		b = f.get(t, next)
	}
	// HR, RR and SpO2 every minute; BP panels and temperatures every 15; the lone systolic;
	// the weight.
	if len(seen) != want || want != 3*f.nHR+2*f.nBP+2 {
		t.Errorf("paged %d distinct of total %d, want %d", len(seen), want, 3*f.nHR+2*f.nBP+2)
	}
	if pages != (want+36)/37 {
		t.Errorf("%d pages for %d at 37", pages, want)
	}
}

func TestObservationReadByID(t *testing.T) {
	f := newFixture(t)
	all := f.get(t, "Observation?patient="+p1+"&_count=1000")
	if total(all) != len(entries(all)) {
		t.Fatalf("one page expected: %d of %d", len(entries(all)), total(all))
	}
	for _, e := range entries(all) {
		id := e["id"].(string)
		if len(id) > 64 {
			t.Errorf("id %s longer than 64", id)
		}
		got := f.get(t, "Observation/"+id)
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(e)
		if string(a) != string(b) {
			t.Errorf("read %s differs from search:\n%s\n%s", id, a, b)
		}
	}
	// P2's non-packed id also resolves.
	for _, e := range entries(f.get(t, "Observation?patient="+p2)) {
		f.get(t, "Observation/"+e["id"].(string))
	}
	// _id search.
	first := entries(all)[0]["id"].(string)
	if b := f.get(t, "Observation?_id="+first); total(b) != 1 {
		t.Errorf("_id: %d", total(b))
	}
}

func TestBloodPressurePanel(t *testing.T) {
	f := newFixture(t)
	for _, o := range entries(f.get(t, "Observation?patient="+p1+"&code=85354-9")) {
		if o["valueQuantity"] != nil {
			t.Errorf("panel with a top-level value: %v", o)
		}
		cs := o["component"].([]any)
		if len(cs) != 2 {
			t.Fatalf("components: %v", cs)
		}
		for i, want := range []string{"http://loinc.org|8480-6", "http://loinc.org|8462-4"} {
			c := cs[i].(map[string]any)
			if got := codings(c); got[0] != want {
				t.Errorf("component %d: %v", i, got)
			}
			q := c["valueQuantity"].(map[string]any)
			if q["code"] != "mm[Hg]" || q["system"] != "http://unitsofmeasure.org" {
				t.Errorf("component unit: %v", q)
			}
		}
		if o["device"].(map[string]any)["reference"] != "Device/"+dMon {
			t.Errorf("device: %v", o["device"])
		}
	}
	lone := entries(f.get(t, "Observation?patient="+p1+"&code=8480-6"))[0]
	if lone["valueQuantity"].(map[string]any)["value"] != 131.0 {
		t.Errorf("lone systolic: %v", lone)
	}
}

func TestSpO2Codings(t *testing.T) {
	f := newFixture(t)
	o := entries(f.get(t, "Observation?patient="+p1+"&code=59408-5&_count=1"))[0]
	want := []string{"http://loinc.org|2708-6", "http://loinc.org|59408-5", "urn:iso:std:iso:11073:10101|150456"}
	if got := codings(o); !slices.Equal(got, want) {
		t.Errorf("SpO2 codings %v, want %v", got, want)
	}
}

// componentCodes lists the MDC codes of an Observation's components, in order.
func componentCodes(o map[string]any) []string {
	var out []string
	cs, _ := o["component"].([]any)
	for _, c := range cs {
		for _, cd := range c.(map[string]any)["code"].(map[string]any)["coding"].([]any) {
			if m := cd.(map[string]any); m["system"] == "urn:iso:std:iso:11073:10101" {
				out = append(out, m["code"].(string))
			}
		}
	}
	return out
}

// The ECG leads of one device in one window are the components of one Observation (MDC
// 131328), even where only one lead was sent; pleth stays one valueSampledData Observation.
func TestWaveformWindows(t *testing.T) {
	f := newFixture(t)
	ws := entries(f.get(t, "Observation?patient="+p1+"&code=urn:iso:std:iso:11073:10101|131330"))
	if len(ws) != f.nECGWindows {
		t.Fatalf("windows with lead II: %d", len(ws))
	}
	for i, w := range ws {
		wantCodes := []string{"urn:iso:std:iso:11073:10101|131328", "urn:oid:2.16.840.1.113883.6.24|131328"}
		if got := codings(w); !slices.Equal(got, wantCodes) || w["valueSampledData"] != nil {
			t.Errorf("window %d: code %v, top-level value %v", i, got, w["valueSampledData"] != nil)
		}
		leads := []string{"131330"}
		if i == 1 || i == 2 {
			leads = []string{"131329", "131330"} // lead I first, as the catalog (and the official example) orders them
		}
		if got := componentCodes(w); !slices.Equal(got, leads) {
			t.Fatalf("window %d: component leads %v, want %v", i, got, leads)
		}
		comps := w["component"].([]any)
		sd := comps[len(comps)-1].(map[string]any)["valueSampledData"].(map[string]any)
		data := strings.Fields(sd["data"].(string))
		if len(data) != 2500 || sd["period"] != 4.0 || sd["factor"] != 0.001 || sd["dimensions"] != 1.0 || sd["origin"].(map[string]any)["code"] != "mV" {
			t.Errorf("window %d lead II: %d samples, period %v factor %v origin %v", i, len(data), sd["period"], sd["factor"], sd["origin"])
		}
		e := 0
		for _, d := range data {
			if d == "E" {
				e++
			}
		}
		want := []int{1250, 0, 0, 2000}[i]
		if e != want {
			t.Errorf("window %d: %d missing samples, want %d", i, e, want)
		}
		if w["effectiveDateTime"] != t0.Add(time.Duration(i)*10*time.Second).Format("2006-01-02T15:04:05.000Z") {
			t.Errorf("window %d at %v", i, w["effectiveDateTime"])
		}
		if i == 1 {
			// Lead I starts at 10:00:12: 2 s (500 samples) missing at the window's start.
			sd := comps[0].(map[string]any)["valueSampledData"].(map[string]any)
			data := strings.Fields(sd["data"].(string))
			if len(data) != 2500 || data[499] != "E" || data[500] == "E" {
				t.Errorf("window 1 lead I: %d samples, [499]=%s [500]=%s", len(data), data[499], data[500])
			}
		}
	}
	p := "Observation?patient=" + p1
	for q, want := range map[string]int{
		"&code=131329": 2, // the ECGs holding lead I
		"&code=urn:iso:std:iso:11073:10101|131329,urn:iso:std:iso:11073:10101|131330": f.nECGWindows,
		"&code=131328": f.nECGWindows,
		"&code=urn:oid:2.16.840.1.113883.6.24|131328": f.nECGWindows, // as the official example codes it
		"&code=urn:iso:std:iso:11073:10101|131331":    0,             // lead V1: none sent
		"&combo-code=131329":                          2,
		"&combo-code=131328":                          f.nECGWindows,
		"&code=131328&device=Device/" + dOx:           0,
		"&code=urn:iso:std:iso:11073:10101|150452":    f.nPlethWindows,
	} {
		if b := f.get(t, p+q); total(b) != want {
			t.Errorf("%s: total %d, want %d", q, total(b), want)
		}
	}
	// Pleth: one Observation with valueSampledData, no components.
	pl := entries(f.get(t, p+"&code=urn:iso:std:iso:11073:10101|150452"))[0]
	if sd, _ := pl["valueSampledData"].(map[string]any); sd == nil || pl["component"] != nil || len(strings.Fields(sd["data"].(string))) != 1000 || sd["period"] != 10.0 {
		t.Errorf("pleth: %v", pl)
	}
	// An id of the former one-Observation-per-lead shape names nothing.
	old, err := fhir.ObservationID(f.cat, fhir.ObsKey{Kind: fhir.KindWaveform, Patient: p1, Device: dECG, Code: "MDC_ECG_ELEC_POTL_II", Time: t0.Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if st, m, _ := f.do(t, "GET", "Observation/"+old, nil); st != http.StatusNotFound {
		t.Errorf("per-lead id: %d %v", st, m)
	}
	// A date filter selects windows by start.
	if b := f.get(t, "Observation?patient="+p1+"&category=procedure&date=ge2026-11-20T10:00:10Z&date=lt2026-11-20T10:00:30Z"); total(b) != 2 {
		t.Errorf("windows in [10 s, 30 s): %d", total(b))
	}
}

func TestLastN(t *testing.T) {
	f := newFixture(t)
	b := f.get(t, "Observation/$lastn?patient="+p1+"&category=vital-signs")
	byCode := map[string]int{}
	for _, o := range entries(b) {
		byCode[codings(o)[0]]++
	}
	// HR, RR, SpO2, temp, BP panel, weight. The lone systolic reading is older than the
	// last panel's window, so it is reported only when asked for by code.
	if len(entries(b)) != 6 {
		t.Errorf("lastn: %d entries: %v", len(entries(b)), byCode)
	}
	b = f.get(t, "Observation/$lastn?patient="+p1+"&code=8480-6")
	if len(entries(b)) != 1 || entries(b)[0]["valueQuantity"].(map[string]any)["value"] != 131.0 {
		t.Errorf("lastn of the lone systolic: %v", entries(b))
	}
	b = f.get(t, "Observation/$lastn?patient="+p1+"&code=8867-4,85354-9&max=3")
	if len(entries(b)) != 6 {
		t.Fatalf("lastn max=3: %d", len(entries(b)))
	}
	if got := entries(b)[0]["effectiveDateTime"]; got != "2026-11-20T11:59:00.000Z" && entries(b)[3]["effectiveDateTime"] != "2026-11-20T11:59:00.000Z" {
		t.Errorf("latest HR not first: %v", got)
	}
	if st, _, _ := f.do(t, "GET", "Observation/$lastn?category=vital-signs", nil); st != 400 {
		t.Errorf("lastn without patient: %d", st)
	}
}

func TestAudit(t *testing.T) {
	f := newFixture(t)
	f.audit.take()
	f.get(t, "Observation?patient="+p1+"&code=8867-4&_count=1")
	o := entries(f.get(t, "Observation?patient="+p2))[0]
	f.get(t, "Observation/"+o["id"].(string))
	f.get(t, "Device/"+dOx)
	f.get(t, "Patient?_count=1&_offset=1")
	f.do(t, "GET", "Patient/"+p1, nil, "Authorization", "")
	recs := f.audit.take()
	if len(recs) != 5 {
		t.Fatalf("audit records: %d: %+v (requests without a principal are the API layer's to record)", len(recs), recs)
	}
	want := []struct {
		action  string
		patient string
	}{{"fhir.observation.search", p1}, {"fhir.observation.search", p2}, {"fhir.observation.read", p2}, {"fhir.device.read", p1}, {"fhir.patient.search", p2}}
	for i, w := range want {
		e := recs[i]
		if e.Action != w.action || !slices.Equal(e.Patients, []string{w.patient}) || e.Actor != "bootstrap" || e.ActorName != "bootstrap" ||
			e.Status != 200 || e.Outcome != iomt.OutcomeSuccess || e.Tenant != iomt.DefaultTenant || e.Source != "127.0.0.1" || e.Purpose != "" {
			t.Errorf("audit %d: %+v, want %v", i, e, w)
		}
	}
	if q := recs[0].Detail["query"]; !strings.Contains(q, "code=8867-4") || recs[0].Resource != "/fhir/r4/Observation" {
		t.Errorf("audit names what was asked: %+v", recs[0])
	}
}

func TestCreateAndUpdate(t *testing.T) {
	f := newFixture(t)
	pat := map[string]any{"resourceType": "Patient", "identifier": []any{map[string]any{"system": "urn:iomt:mrn", "value": "MRN-777"}},
		"name": []any{map[string]any{"family": "Curie", "given": []any{"Marie"}}}, "birthDate": "1967-11-07"}
	st, p, h := f.do(t, "POST", "Patient", pat)
	if st != 201 || p["id"] == nil || !strings.HasSuffix(h.Get("Location"), "/Patient/"+p["id"].(string)) {
		t.Fatalf("create patient: %d %v %v", st, p, h.Get("Location"))
	}
	id := p["id"].(string)
	if p["name"].([]any)[0].(map[string]any)["text"] != "Marie Curie" {
		t.Errorf("name: %v", p["name"])
	}
	// Same MRN again: 409 naming the MRN and who has it; conditional create finds the
	// existing one.
	if st, m, _ := f.do(t, "POST", "Patient", pat); st != 409 {
		t.Errorf("duplicate MRN: %d %v", st, m)
	} else if code, diag := issue(t, m); code != "duplicate" || diag != `MRN "MRN-777" already belongs to Patient/`+id {
		t.Errorf("duplicate: %s %q", code, diag)
	}
	if st, m, _ := f.do(t, "POST", "Patient", pat, "If-None-Exist", "identifier=urn:iomt:mrn|MRN-777"); st != 200 || m["id"] != id {
		t.Errorf("conditional create: %d %v", st, m)
	}
	// Update. The NEWS2 SpO2 scale, set through the REST API and not part of FHIR's
	// Patient, survives the replacement.
	cur, err := f.store.Patient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	cur.SpO2Scale = 2
	if err := f.store.UpdatePatient(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	pat["id"] = id
	pat["birthDate"] = "1967-11-08"
	if st, m, _ := f.do(t, "PUT", "Patient/"+id, pat); st != 200 || m["birthDate"] != "1967-11-08" {
		t.Errorf("update: %d %v", st, m)
	}
	if got, err := f.store.Patient(context.Background(), id); err != nil || got.SpO2Scale != 2 || got.BirthDate != "1967-11-08" {
		t.Errorf("after a FHIR update: %+v %v, want SpO2 scale 2 kept", got, err)
	}
	if st, _, _ := f.do(t, "PUT", "Patient/other-id", pat); st != 400 {
		t.Errorf("id mismatch: %d", st)
	}
	// Update as create with a client id.
	pat["id"], pat["identifier"] = "client-chosen-1", nil
	delete(pat, "identifier")
	if st, m, _ := f.do(t, "PUT", "Patient/client-chosen-1", pat); st != 201 || m["id"] != "client-chosen-1" {
		t.Errorf("update as create: %d %v", st, m)
	}
	// Things iomt cannot store are refused by name.
	for _, tc := range []struct {
		body       string
		status     int
		code, expr string
	}{
		{`{"resourceType":"Patient","name":[{"text":"X"}],"gender":"f"}`, 422, "code-invalid", "Patient.gender"},
		{`{"resourceType":"Patient","name":[{"text":"X"}],"telecom":[{"system":"phone","value":"1"}]}`, 422, "not-supported", "Patient.telecom"},
		{`{"resourceType":"Patient","name":[{"text":"X"}],"identifier":[{"system":"urn:ssn","value":"1"}]}`, 422, "not-supported", "Patient.identifier[0]"},
		{`{"resourceType":"Patient"}`, 422, "required", "Patient.name"},
		{`{"resourceType":"Patient","name":[{"text":"X"}],"birthDate":"1970"}`, 422, "value", "Patient.birthDate"},
		{`{"resourceType":"Device"}`, 400, "invalid", "resourceType"},
		{`{not json`, 400, "structure", ""},
	} {
		st, m, _ := f.do(t, "POST", "Patient", tc.body)
		if st != tc.status {
			t.Errorf("%s: %d, want %d: %v", tc.body, st, tc.status, m)
			continue
		}
		code, _ := issue(t, m)
		var expr string
		if es, ok := m["issue"].([]any)[0].(map[string]any)["expression"].([]any); ok {
			expr = es[0].(string)
		}
		if code != tc.code || expr != tc.expr {
			t.Errorf("%s: issue %s at %s, want %s at %s", tc.body, code, expr, tc.code, tc.expr)
		}
	}
	if st, _, _ := f.do(t, "POST", "Patient", pat, "Content-Type", "text/plain"); st != 415 {
		t.Errorf("text/plain: %d", st)
	}

	// Devices: kind and binding; no credentials in the answer.
	dev := map[string]any{"resourceType": "Device", "type": map[string]any{"coding": []any{map[string]any{"system": "urn:iomt:device-kind", "code": "thermometer"}}}, "patient": map[string]any{"reference": "Patient/" + id}}
	st, d, _ := f.do(t, "POST", "Device", dev)
	if st != 201 || d["patient"].(map[string]any)["reference"] != "Patient/"+id {
		t.Fatalf("create device: %d %v", st, d)
	}
	raw, _ := json.Marshal(d)
	for _, secret := range []string{"token", "password", "mqtt", "Hash"} {
		if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(secret)) {
			t.Errorf("device answer mentions %s: %s", secret, raw)
		}
	}
	devID := d["id"].(string)
	stored, err := f.store.Device(t.Context(), devID)
	if err != nil || stored.Kind != "thermometer" || stored.Patient != id || stored.TokenHash != nil {
		t.Errorf("stored device: %+v %v", stored, err)
	}
	dev["id"] = devID
	delete(dev, "patient")
	dev["type"] = map[string]any{"text": "scale"}
	if st, m, _ := f.do(t, "PUT", "Device/"+devID, dev); st != 200 || m["patient"] != nil || m["type"].(map[string]any)["text"] != "scale" {
		t.Errorf("update device: %d %v", st, m)
	}
	dev["patient"] = map[string]any{"reference": "Patient/nobody"}
	if st, m, _ := f.do(t, "PUT", "Device/"+devID, dev); st != 422 {
		t.Errorf("binding to nobody: %d %v", st, m)
	}
	if st, m, _ := f.do(t, "POST", "Device", map[string]any{"resourceType": "Device", "type": map[string]any{"text": "toaster"}}); st != 422 {
		t.Errorf("unknown kind: %d %v", st, m)
	}
	// A PUT of a patient onto another's MRN: 409 naming the MRN's holder.
	other := map[string]any{"resourceType": "Patient", "id": "client-chosen-1", "name": []any{map[string]any{"text": "X"}},
		"identifier": []any{map[string]any{"system": "urn:iomt:mrn", "value": "MRN-001"}}}
	if st, m, _ := f.do(t, "PUT", "Patient/client-chosen-1", other); st != 409 {
		t.Errorf("PUT onto MRN-001: %d %v", st, m)
	} else if _, diag := issue(t, m); diag != `MRN "MRN-001" already belongs to Patient/`+p1 {
		t.Errorf("PUT onto MRN-001: %q", diag)
	}

	// Device identifiers: kept, returned, searchable, and a conditional create's key.
	serial := map[string]any{"system": "urn:example:acme:serial", "value": "SN-9"}
	dev = map[string]any{"resourceType": "Device", "identifier": []any{serial}, "text": map[string]any{"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">SN-9</div>"}}
	st, d, _ = f.do(t, "POST", "Device", dev)
	if st != 201 || d["type"].(map[string]any)["text"] != "other" || len(d["identifier"].([]any)) != 1 || d["text"] != nil {
		t.Fatalf("device with an identifier and no type: %d %v", st, d)
	}
	serialID := d["id"].(string)
	for q, want := range map[string]int{
		"identifier=urn:example:acme:serial|SN-9": 1, "identifier=SN-9": 1, "identifier=urn:example:acme:serial|": 2, // and the oximeter's serial
		"identifier=urn:other|SN-9": 0, "identifier=|SN-9": 0, "identifier=SN-9&type=other": 1, "identifier=SN-9&type=scale": 0,
		"identifier=OX-123,SN-9": 2,
	} {
		if b := f.get(t, "Device?"+q); total(b) != want {
			t.Errorf("Device?%s: %d, want %d", q, total(b), want)
		}
	}
	if st, m, _ := f.do(t, "POST", "Device", dev, "If-None-Exist", "identifier=urn:example:acme:serial|SN-9"); st != 200 || m["id"] != serialID {
		t.Errorf("conditional create of a known device: %d %v", st, m)
	}
	if st, m, _ := f.do(t, "POST", "Device", dev, "If-None-Exist", "identifier=urn:example:acme:serial|SN-9,SN-10"); st != 400 {
		t.Errorf("conditional create with two values: %d %v", st, m)
	}
	dev["identifier"] = []any{map[string]any{"system": "urn:example:acme:serial", "value": "SN-10"}}
	if st, m, _ := f.do(t, "POST", "Device", dev, "If-None-Exist", "identifier=urn:example:acme:serial|SN-10"); st != 201 || m["id"] == serialID {
		t.Errorf("conditional create of a new device: %d %v", st, m)
	}
	// PUT replaces them: without identifier, none are left.
	if st, m, _ := f.do(t, "PUT", "Device/"+serialID, map[string]any{"resourceType": "Device", "id": serialID}); st != 200 || m["identifier"] != nil {
		t.Errorf("PUT without identifier: %d %v", st, m)
	}
	if got, _ := f.store.Device(t.Context(), serialID); got.Identifiers != nil || got.Kind != "other" {
		t.Errorf("stored after PUT: %+v", got)
	}
	// What iomt would have to drop is refused by name.
	for _, tc := range []struct {
		ident      string
		status     int
		code, expr string
	}{
		{`{"use":"official","system":"urn:x","value":"1"}`, 422, "not-supported", "Device.identifier[0].use"},
		{`{"system":"urn:x","value":"1","assigner":{"display":"ACME"}}`, 422, "not-supported", "Device.identifier[0].assigner"},
		{`{"system":"urn:x"}`, 422, "required", "Device.identifier[0].value"},
		{`{"system":"urn:x","value":"1"},{"system":"urn:x","value":"1"}`, 422, "value", "Device.identifier"},
		{`{"system":"urn:x","value":7}`, 400, "structure", ""},
	} {
		body := `{"resourceType":"Device","identifier":[` + tc.ident + `]}`
		st, m, _ := f.do(t, "POST", "Device", body)
		if st != tc.status {
			t.Errorf("%s: %d, want %d: %v", body, st, tc.status, m)
			continue
		}
		code, diag := issue(t, m)
		var expr string
		if es, ok := m["issue"].([]any)[0].(map[string]any)["expression"].([]any); ok {
			expr = es[0].(string)
		}
		if code != tc.code || expr != tc.expr || diag == "" {
			t.Errorf("%s: issue %s at %s (%q), want %s at %s", body, code, expr, diag, tc.code, tc.expr)
		}
	}
	// Observations are not written through FHIR.
	if st, m, h := f.do(t, "POST", "Observation", map[string]any{"resourceType": "Observation"}); st != 405 || h.Get("Allow") != "GET" {
		t.Errorf("POST Observation: %d %v", st, m)
	}
}
