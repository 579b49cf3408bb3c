package fhir_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// typeSchemas compiles each resource type's definition on demand: validating against one
// type is much faster than the root's oneOf over 146 types, and its errors are readable.
type typeSchemas struct {
	c     *jsonschema.Compiler
	byTyp map[string]*jsonschema.Schema
}

func newTypeSchemas(t *testing.T) *typeSchemas {
	t.Helper()
	p := filepath.Join(sharedData(t, "fhir"), "fhir.schema.json")
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	doc, err := jsonschema.UnmarshalJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("fhir.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	return &typeSchemas{c: c, byTyp: map[string]*jsonschema.Schema{}}
}

func (ts *typeSchemas) get(t *testing.T, typ string) *jsonschema.Schema {
	t.Helper()
	if s, ok := ts.byTyp[typ]; ok {
		return s
	}
	s, err := ts.c.Compile("fhir.schema.json#/definitions/" + typ)
	if err != nil {
		t.Fatal(err)
	}
	ts.byTyp[typ] = s
	return s
}

// r4SchemaFix works around a defect of the published R4 JSON schema: its fhirVersion enum
// stops at 4.0.0, so the CapabilityStatement of any 4.0.1 server fails it. The copy that is
// validated says 4.0.0; the test checks separately that the original says 4.0.1.
func r4SchemaFix(t *testing.T, m map[string]any) map[string]any {
	if m["resourceType"] != "CapabilityStatement" {
		return m
	}
	if m["fhirVersion"] != "4.0.1" {
		t.Errorf("CapabilityStatement.fhirVersion %v, want 4.0.1", m["fhirVersion"])
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	c["fhirVersion"] = "4.0.0"
	return c
}

// loadSchema compiles the whole R4 schema (a resource of any type, by its resourceType).
func loadSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return newTypeSchemas(t).root(t)
}

func (ts *typeSchemas) root(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := ts.c.Compile("fhir.schema.json")
	if err != nil {
		t.Fatalf("compile the R4 schema: %v", err)
	}
	return sch
}

func validate(sch *jsonschema.Schema, v any) error {
	// Round-trip through jsonschema's decoder so numbers are json.Number as it expects.
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// crawl asks the API for everything it holds and a few refusals, so that every kind of
// resource it emits passes through recordEmitted.
func crawl(t *testing.T, f *fixture) {
	f.get(t, "metadata")
	for _, typ := range []string{"Patient", "Device", "DeviceMetric"} {
		for _, r := range entries(f.get(t, typ+"?_count=1000")) {
			f.get(t, typ+"/"+r["id"].(string))
		}
	}
	for _, p := range []string{p1, p2} {
		b := f.get(t, "Observation?patient="+p+"&_count=1000")
		if len(entries(b)) != total(b) {
			t.Fatalf("crawl: one page expected")
		}
		f.get(t, "Observation/$lastn?patient="+p+"&max=2")
		f.get(t, "Observation?patient="+p+"&_count=5&_offset=5")
	}
	f.do(t, "GET", "Patient/nobody", nil)
	f.do(t, "GET", "Observation?patient="+p1+"&bogus=1", nil)
	f.do(t, "POST", "Observation", `{"resourceType":"Observation"}`)
	f.do(t, "POST", "Patient", `{"resourceType":"Patient","name":[{"text":"New Person"}],"birthDate":"2001-02-03"}`)
	f.do(t, "POST", "Patient", `{"resourceType":"Patient","name":[{"use":"official","family":"Curie","given":["Marie","Salomea"]}],"gender":"female","birthDate":"1967-11-07"}`)
	f.do(t, "POST", "Patient", `{"resourceType":"Patient","name":[{"text":"X"}],"gender":"m"}`)
	f.do(t, "GET", "Patient", nil, "Authorization", "")
}

func TestEmittedResourcesValidate(t *testing.T) {
	ts := newTypeSchemas(t)
	sch := ts.root(t)
	f := newFixture(t)
	crawl(t, f)
	emitted.mu.Lock()
	all := slices.Clone(emitted.all)
	emitted.mu.Unlock()
	kinds := map[string]int{}
	var check func(m map[string]any)
	check = func(m map[string]any) {
		typ := m["resourceType"].(string)
		kinds[typ]++
		m = r4SchemaFix(t, m)
		whole := m
		if typ == "Bundle" {
			// Entries are checked one by one against their own type; the Bundle without them.
			var es []any
			list, _ := m["entry"].([]any)
			for _, e := range list {
				e := e.(map[string]any)
				check(e["resource"].(map[string]any))
				es = append(es, map[string]any{"fullUrl": e["fullUrl"], "search": e["search"]})
			}
			whole = map[string]any{}
			for k, v := range m {
				whole[k] = v
			}
			if len(es) > 0 {
				whole["entry"] = es
			}
		}
		if err := validate(ts.get(t, typ), whole); err != nil {
			b, _ := json.Marshal(m)
			if len(b) > 600 {
				b = b[:600]
			}
			t.Errorf("%s %v does not validate: %v\n%s", typ, m["id"], err, b)
		}
		// A sample goes through the root schema too, which checks the resourceType
		// discriminator as a client's validator would.
		if kinds[typ] <= 2 && typ != "Bundle" {
			if err := validate(sch, m); err != nil {
				t.Errorf("%s %v fails the root schema", typ, m["id"])
			}
		}
	}
	for _, m := range all {
		check(m)
	}
	for _, k := range []string{"CapabilityStatement", "Bundle", "Patient", "Device", "DeviceMetric", "Observation", "OperationOutcome"} {
		if kinds[k] == 0 {
			t.Errorf("no %s was emitted", k)
		}
	}
	t.Logf("validated %v", kinds)
}

// The R4 vital-signs profiles' unit rules, from the profiles' value sets.
var profileUnits = map[string][]string{
	"8867-4": {"/min"}, "9279-1": {"/min"}, "2708-6": {"%"}, "8310-5": {"Cel", "[degF]"},
	"29463-7": {"kg", "g", "[lb_av]"}, "8302-2": {"cm", "[in_i]"}, "39156-5": {"kg/m2"},
	"8480-6": {"mm[Hg]"}, "8462-4": {"mm[Hg]"}, "8478-0": {"mm[Hg]"},
}

// checkVitalSign applies the constraints of the vital-signs profiles that can be checked
// mechanically; it returns what is wrong.
func checkVitalSign(o map[string]any, valueSet []string) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if o["status"] == nil {
		bad("no status")
	}
	isVS := false
	for _, c := range o["category"].([]any) {
		for _, cd := range c.(map[string]any)["coding"].([]any) {
			m := cd.(map[string]any)
			isVS = isVS || m["system"] == "http://terminology.hl7.org/CodeSystem/observation-category" && m["code"] == "vital-signs"
		}
	}
	if !isVS {
		bad("category lacks vital-signs")
	}
	var loinc []string
	for _, c := range o["code"].(map[string]any)["coding"].([]any) {
		m := c.(map[string]any)
		if m["system"] == "http://loinc.org" {
			loinc = append(loinc, m["code"].(string))
		}
	}
	profileCode := ""
	for _, c := range loinc {
		if slices.Contains(valueSet, c) {
			profileCode = c
			break
		}
	}
	if profileCode == "" {
		bad("no LOINC code from the vital-signs value set in %v", loinc)
	}
	subj, _ := o["subject"].(map[string]any)
	if subj == nil || !strings.HasPrefix(subj["reference"].(string), "Patient/") {
		bad("subject is not a Patient reference")
	}
	if o["effectiveDateTime"] == nil && o["effectivePeriod"] == nil {
		bad("no effective[x]")
	}
	checkQ := func(where, code string, q map[string]any) {
		if q == nil {
			bad("%s has no valueQuantity", where)
			return
		}
		if q["system"] != "http://unitsofmeasure.org" || q["code"] == nil {
			bad("%s unit is not UCUM: %v", where, q)
		}
		if _, ok := q["value"].(float64); !ok {
			bad("%s has no numeric value", where)
		}
		if us, ok := profileUnits[code]; ok && !slices.Contains(us, q["code"].(string)) {
			bad("%s unit %v, profile allows %v", where, q["code"], us)
		}
	}
	comps, _ := o["component"].([]any)
	if profileCode == "85354-9" {
		if o["valueQuantity"] != nil {
			bad("blood pressure panel has a top-level value")
		}
		var got []string
		for i, c := range comps {
			cm := c.(map[string]any)
			code := ""
			for _, cd := range cm["code"].(map[string]any)["coding"].([]any) {
				if m := cd.(map[string]any); m["system"] == "http://loinc.org" {
					code = m["code"].(string)
				}
			}
			got = append(got, code)
			q, _ := cm["valueQuantity"].(map[string]any)
			checkQ(fmt.Sprintf("component[%d]", i), code, q)
		}
		if !slices.Contains(got, "8480-6") || !slices.Contains(got, "8462-4") {
			bad("blood pressure components %v", got)
		}
		return errs
	}
	if len(comps) == 0 { // vs-2
		q, _ := o["valueQuantity"].(map[string]any)
		checkQ("value", profileCode, q)
	}
	return errs
}

func TestVitalSignsProfile(t *testing.T) {
	var vs struct {
		Compose struct {
			Include []struct {
				Concept []struct{ Code string }
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(sharedData(t, "fhir"), "r4-vitalsigns-profiles", "ValueSet-observation-vitalsignresult.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	var valueSet []string
	for _, c := range vs.Compose.Include[0].Concept {
		valueSet = append(valueSet, c.Code)
	}
	f := newFixture(t)
	n := 0
	for _, o := range entries(f.get(t, "Observation?patient="+p1+"&category=vital-signs&_count=1000")) {
		n++
		if errs := checkVitalSign(o, valueSet); len(errs) > 0 {
			t.Errorf("Observation %s (%v): %v", o["id"], codings(o), errs)
		}
	}
	if n == 0 {
		t.Fatal("no vital signs")
	}
	// The checker itself catches what it should.
	bp := entries(f.get(t, "Observation?patient="+p1+"&code=85354-9&_count=1"))[0]
	bp["valueQuantity"] = map[string]any{"value": 1.0, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
	if errs := checkVitalSign(bp, valueSet); len(errs) == 0 {
		t.Error("a panel with a top-level value passed")
	}

	// Ours has the same shape as the official examples: the same LOINC code, UCUM code and
	// category for each vital sign.
	dir := filepath.Join(sharedData(t, "fhir"), "r4-examples")
	for file, query := range map[string]string{
		"Observation-heart-rate.json":       "code=http://loinc.org|8867-4",
		"Observation-respiratory-rate.json": "code=9279-1",
		"Observation-satO2.json":            "code=2708-6",
		"Observation-body-temperature.json": "code=8310-5",
		"Observation-blood-pressure.json":   "code=85354-9",
	} {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var official map[string]any
		if err := json.Unmarshal(raw, &official); err != nil {
			t.Fatal(err)
		}
		ours := entries(f.get(t, "Observation?patient="+p1+"&_count=1&"+query))[0]
		if codings(official)[0] != codings(ours)[0] {
			t.Errorf("%s: code %v, ours %v", file, codings(official)[0], codings(ours)[0])
		}
		unit := func(o map[string]any) any {
			if q, ok := o["valueQuantity"].(map[string]any); ok {
				return q["code"]
			}
			return o["component"].([]any)[0].(map[string]any)["valueQuantity"].(map[string]any)["code"]
		}
		if unit(official) != unit(ours) {
			t.Errorf("%s: unit %v, ours %v", file, unit(official), unit(ours))
		}
		if errs := checkVitalSign(official, valueSet); len(errs) > 0 {
			t.Errorf("official %s fails our checker: %v", file, errs)
		}
	}
}

// The official examples: valid against the schema; what iomt accepts, it stores; what it
// cannot store, it refuses with a specific OperationOutcome.
func TestOfficialExamples(t *testing.T) {
	sch := loadSchema(t)
	dir := filepath.Join(sharedData(t, "fhir"), "r4-examples")
	files, err := filepath.Glob(filepath.Join(dir, "*-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", dir, err)
	}
	f := newFixture(t)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ex map[string]any
		if err := json.Unmarshal(raw, &ex); err != nil {
			t.Fatal(err)
		}
		typ, _ := ex["resourceType"].(string)
		if typ == "" {
			continue // the package manifest
		}
		name := filepath.Base(file)
		if err := validate(sch, ex); err != nil {
			t.Errorf("%s: the validator refuses an official example: %v", name, err)
		}
		st, m, _ := f.do(t, "POST", typ, raw)
		switch typ {
		case "Observation":
			code, diag := issue(t, m)
			if st != 405 || code != "not-supported" || !strings.Contains(diag, "ingest") {
				t.Errorf("%s: %d %s %q", name, st, code, diag)
			}
		case "DeviceMetric":
			code, diag := issue(t, m)
			if st != 405 || code != "not-supported" {
				t.Errorf("%s: %d %s %q", name, st, code, diag)
			}
		case "Device":
			// Device-example carries only an identifier and a narrative: accepted as is, kind
			// "other", identifier kept; the narrative is iomt's to generate (none).
			if st != 201 || m["resourceType"] != "Device" {
				t.Errorf("%s: %d %v", name, st, m)
				continue
			}
			got := f.get(t, "Device/"+m["id"].(string))
			if !reflect.DeepEqual(got["identifier"], ex["identifier"]) || got["type"].(map[string]any)["text"] != "other" || got["text"] != nil {
				t.Errorf("%s: stored as %v", name, got)
			}
		default:
			t.Errorf("%s: unexpected resource type %s", name, typ)
		}
	}
	// A broken resource is caught by the validator (the test would be vacuous otherwise).
	bad := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}, "valueQuantity": map[string]any{"value": "ninety"}}
	if validate(sch, bad) == nil {
		t.Error("validator accepts a string valueQuantity.value")
	}
	// The official Device example, as is, is accepted by PUT too (update as create, its id),
	// and again (an update); each answer validates.
	raw, err := os.ReadFile(filepath.Join(dir, "Device-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{201, 200} {
		st, m, _ := f.do(t, "PUT", "Device/example", raw)
		if st != want {
			t.Errorf("PUT Device/example: %d, want %d: %v", st, want, m)
			continue
		}
		if err := validate(sch, m); err != nil {
			t.Errorf("PUT Device/example answered an invalid Device: %v", err)
		}
	}
	d := f.get(t, "Device/example")
	ids, _ := d["identifier"].([]any)
	if len(ids) != 1 || ids[0].(map[string]any)["system"] != "http://goodcare.org/devices/id" || ids[0].(map[string]any)["value"] != "345675" {
		t.Errorf("Device/example: identifier %v", d["identifier"])
	}
	// Found by its identifier: the POST above and the PUT both hold it.
	if b := f.get(t, "Device?identifier=http://goodcare.org/devices/id|345675"); total(b) != 2 {
		t.Errorf("Device?identifier: %d, want 2", total(b))
	}
}

// Our ECG has the shape of the official Observation-ekg: category procedure, code MDC 131328
// (in the example's code system too), one component per lead coded by the lead's MDC term,
// each with valueSampledData holding the SampledData elements the example fills (origin,
// period, factor, dimensions, data); lowerLimit and upperLimit are left out, as iomt does
// not know the device's range. Both pass the Observation schema.
func TestECGLikeOfficialExample(t *testing.T) {
	ts := newTypeSchemas(t)
	raw, err := os.ReadFile(filepath.Join(sharedData(t, "fhir"), "r4-examples", "Observation-ekg.json"))
	if err != nil {
		t.Fatal(err)
	}
	var official map[string]any
	if err := json.Unmarshal(raw, &official); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	// The window at 10:00:10 holds leads I and II, both in the example.
	ours := entries(f.get(t, "Observation?patient="+p1+"&code=131328&date=2026-11-20T10:00:10Z"))
	if len(ours) != 1 {
		t.Fatalf("ECG windows at 10:00:10: %d", len(ours))
	}
	ecg := ours[0]
	for _, o := range []map[string]any{official, ecg} {
		if err := validate(ts.get(t, "Observation"), o); err != nil {
			t.Errorf("%v: %v", o["id"], err)
		}
	}
	cat := func(o map[string]any) any {
		return o["category"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
	}
	if cat(official) != "procedure" || cat(ecg) != cat(official) {
		t.Errorf("category %v, official %v", cat(ecg), cat(official))
	}
	if want := codings(official)[0]; want != "urn:oid:2.16.840.1.113883.6.24|131328" || !slices.Contains(codings(ecg), want) {
		t.Errorf("code %v lacks the official %v", codings(ecg), want)
	}
	if ecg["valueSampledData"] != nil || official["valueSampledData"] != nil {
		t.Error("a top-level value besides the components")
	}
	officialLeads := map[string]bool{}
	for _, c := range official["component"].([]any) {
		officialLeads[codings(c.(map[string]any))[0]] = true
	}
	comps := ecg["component"].([]any)
	if len(comps) != 2 {
		t.Fatalf("components: %d", len(comps))
	}
	for i, c := range comps {
		c := c.(map[string]any)
		if cs := codings(c); !slices.ContainsFunc(cs, func(s string) bool { return officialLeads[s] }) {
			t.Errorf("component %d: code %v is none of the example's leads %v", i, cs, officialLeads)
		}
		sd := c["valueSampledData"].(map[string]any)
		for _, k := range []string{"origin", "period", "factor", "dimensions", "data"} {
			if sd[k] == nil {
				t.Errorf("component %d: valueSampledData lacks %s", i, k)
			}
		}
		if sd["origin"].(map[string]any)["value"] == nil || sd["dimensions"] != 1.0 {
			t.Errorf("component %d: origin %v, dimensions %v", i, sd["origin"], sd["dimensions"])
		}
	}
}
