package codes_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iomt/iomt/codes"
)

// sharedData is the project's reference data: ../shared/data from the module root.
const sharedData = "../../shared/data"

func dataDir(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join(sharedData, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data %s is absent (%v): skipping the cross-check against it", dir, err)
	}
	return dir
}

// mdcHolds reports whether code carries refID as its MDC term or a further one.
func mdcHolds(code codes.Code, refID string) bool {
	if strings.EqualFold(code.MDC, refID) {
		return true
	}
	for _, alt := range code.AltMDC {
		if strings.EqualFold(alt.RefID, refID) {
			return true
		}
	}
	return false
}

// Every MDC-coded OBX of the HL7 v2 fixtures that the catalog knows must agree on number and
// reference id, and its numeric value must convert from the message's unit into the range.
func TestHL7v2Fixtures(t *testing.T) {
	dir := dataDir(t, "hl7v2")
	files, _ := filepath.Glob(filepath.Join(dir, "*.hl7*"))
	c := codes.New()
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range strings.FieldsFunc(string(raw), func(r rune) bool { return r == '\r' || r == '\n' }) {
			fld := strings.Split(seg, "|")
			if fld[0] != "OBX" || len(fld) < 7 {
				continue
			}
			id := strings.Split(fld[3], "^")
			if len(id) < 3 || id[2] != "MDC" {
				continue
			}
			byNum, numOK := c.Lookup(id[0])
			byRef, refOK := c.Lookup(id[1])
			switch {
			case numOK && (!refOK || byRef.ID != byNum.ID):
				t.Errorf("%s: OBX-3 %s: number is %s but reference id is %v", filepath.Base(f), fld[3], byNum.ID, byRef.ID)
			case refOK && !numOK:
				// pcd01-MaximumRequest2 garbles numbers on purpose (1500212^MDC_PRESS_BLD_NONINV_SYS).
				t.Logf("%s: OBX-3 %s: reference id known, number not", filepath.Base(f), fld[3])
			}
			if !numOK || fld[2] != "NM" {
				continue
			}
			if !mdcHolds(byNum, id[1]) {
				t.Errorf("%s: OBX-3 %s resolves to %s, which does not hold %s", filepath.Base(f), fld[3], byNum.ID, id[1])
			}
			v, err := strconv.ParseFloat(fld[5], 64)
			if err != nil {
				continue
			}
			u := strings.Split(fld[6], "^")
			unit := u[0]
			if len(u) >= 3 && u[2] == "MDC" {
				unit = u[1]
			}
			got, err := c.Convert(byNum, v, unit)
			if err != nil {
				t.Errorf("%s: OBX %s value %s %s: %v", filepath.Base(f), fld[3], fld[5], fld[6], err)
				continue
			}
			if got < byNum.Min || got > byNum.Max {
				t.Errorf("%s: OBX %s: %v %s is outside %v..%v", filepath.Base(f), fld[3], got, byNum.Unit, byNum.Min, byNum.Max)
			}
			checked++
		}
	}
	t.Logf("%d OBX values checked", checked)
	if checked < 15 {
		t.Errorf("only %d OBX values checked; the fixtures changed?", checked)
	}
	// the thermometer message: 98.6 degF oral
	temp, _ := c.Lookup("MDC_TEMP_ORAL")
	if v, err := c.Convert(temp, 98.6, "MDC_DIM_FAHR"); err != nil || v != 37 {
		t.Errorf("oral 98.6 MDC_DIM_FAHR = %v, %v", v, err)
	}
}

type fhirCoding struct {
	System, Code, Display string
}

type fhirQuantity struct {
	Value *float64
	Code  string
}

type fhirObservation struct {
	ResourceType string
	Code         struct{ Coding []fhirCoding }
	Type         struct{ Coding []fhirCoding } // DeviceMetric
	Unit         struct{ Coding []fhirCoding } // DeviceMetric
	Quantity     *fhirQuantity                 `json:"valueQuantity"`
	Component    []struct {
		Code     struct{ Coding []fhirCoding }
		Quantity *fhirQuantity `json:"valueQuantity"`
	}
}

var mdcSystems = []string{"urn:iso:std:iso:11073:10101", "urn:oid:2.16.840.1.113883.6.24"}

// checkCodings resolves LOINC and MDC codings, checks MDC numbers against their displays and
// converts the quantity, if any, with the first coding the catalog knows.
func checkCodings(t *testing.T, c *codes.Catalog, file string, codings []fhirCoding, q *fhirQuantity) int {
	var first *codes.Code
	for _, cd := range codings {
		var code codes.Code
		var ok bool
		switch {
		case cd.System == "http://loinc.org":
			code, ok = c.Lookup(cd.Code)
		case slices.Contains(mdcSystems, cd.System):
			code, ok = c.Lookup(cd.Code)
			if !ok {
				t.Errorf("%s: MDC %s %s is not in the catalog", file, cd.Code, cd.Display)
				continue
			}
			if strings.HasPrefix(cd.Display, "MDC_") && !mdcHolds(code, cd.Display) {
				t.Errorf("%s: MDC %s is %s in the data, %s in the catalog", file, cd.Code, cd.Display, code.MDC)
			}
		}
		if ok && first == nil {
			first = &code
		}
	}
	if first == nil || q == nil || q.Value == nil {
		return 0
	}
	v, err := c.Convert(*first, *q.Value, q.Code)
	if err != nil {
		t.Errorf("%s: %v %s: %v", file, *q.Value, q.Code, err)
		return 0
	}
	if v < first.Min || v > first.Max {
		t.Errorf("%s: %v %s is outside %v..%v", file, v, first.Unit, first.Min, first.Max)
	}
	return 1
}

func TestFHIRExamples(t *testing.T) {
	dir := dataDir(t, "fhir/r4-examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	c := codes.New()
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var o fhirObservation
		if err := json.Unmarshal(raw, &o); err != nil {
			continue // the npm package manifest
		}
		name := filepath.Base(f)
		checked += checkCodings(t, c, name, o.Code.Coding, o.Quantity)
		checked += checkCodings(t, c, name, o.Type.Coding, nil)
		for _, comp := range o.Component {
			checked += checkCodings(t, c, name, comp.Code.Coding, comp.Quantity)
		}
		for _, u := range o.Unit.Coding {
			if u.Display == "MDC_DIM_PERCENT" {
				spo2, _ := c.Lookup("spo2")
				if _, err := c.Convert(spo2, 95, u.Display); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	}
	t.Logf("%d FHIR quantities checked", checked)
	// heart rate, respiratory rate, SpO2, temperature, weight, height x2, BMI, MAP, BP x2 (x3 files)
	if checked < 12 {
		t.Errorf("only %d FHIR quantities checked; the examples changed?", checked)
	}
}

// The catalog's FHIR facts follow the vital-signs profiles themselves.
func TestFHIRVitalSignsProfiles(t *testing.T) {
	dir := dataDir(t, "fhir/r4-vitalsigns-profiles")
	c := codes.New()

	raw, err := os.ReadFile(filepath.Join(dir, "ValueSet-observation-vitalsignresult.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs struct {
		Compose struct {
			Include []struct{ Concept []struct{ Code string } }
		}
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	var set []string
	for _, inc := range vs.Compose.Include {
		for _, cc := range inc.Concept {
			set = append(set, cc.Code)
		}
	}
	slices.Sort(set)
	want := slices.Clone(fhirVitalSigns)
	slices.Sort(want)
	if !slices.Equal(set, want) {
		t.Errorf("FHIR vital-signs value set %v, the test assumes %v", set, want)
	}

	// Each profile's fixed Observation.code and, where fixed, its UCUM unit.
	profiles, _ := filepath.Glob(filepath.Join(dir, "StructureDefinition-*.json"))
	var bpComponents []string
	for _, p := range profiles {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var sd struct {
			Snapshot struct {
				Element []struct {
					ID        string
					FixedCode string
				}
			}
		}
		if err := json.Unmarshal(raw, &sd); err != nil {
			t.Fatal(err)
		}
		var profileCode, unit string
		for _, e := range sd.Snapshot.Element {
			path, val := e.ID, e.FixedCode
			switch {
			case val == "":
			case strings.HasPrefix(path, "Observation.code.coding:") && strings.HasSuffix(path, ".code"):
				profileCode = val
			case path == "Observation.value[x]:valueQuantity.code":
				unit = val
			case strings.HasPrefix(path, "Observation.component:") && strings.Contains(path, ".code.coding:") && strings.HasSuffix(path, ".code"):
				bpComponents = append(bpComponents, val)
			}
		}
		if profileCode == "" {
			continue
		}
		code, ok := c.Lookup(profileCode)
		if !ok {
			if profileCode != "85353-1" && profileCode != "9843-4" { // vitals panel, head circumference: not measured by iomt devices
				t.Errorf("%s fixes %s, which is not in the catalog", filepath.Base(p), profileCode)
			}
			continue
		}
		if !code.FHIRVitalSigns || code.VitalSignsLOINC != profileCode {
			t.Errorf("%s fixes %s; catalog says FHIRVitalSigns %v, VitalSignsLOINC %q", filepath.Base(p), profileCode, code.FHIRVitalSigns, code.VitalSignsLOINC)
		}
		if unit != "" && unit != code.Unit {
			t.Errorf("%s fixes unit %s; catalog's canonical unit is %s", filepath.Base(p), unit, code.Unit)
		}
	}
	bp, _ := c.Lookup("85354-9")
	if !slices.Equal(bp.Components, bpComponents) {
		t.Errorf("bp profile components %v, catalog %v", bpComponents, bp.Components)
	}
}
