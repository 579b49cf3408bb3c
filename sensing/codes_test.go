package sensing

import (
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
)

// TestCodesInCatalog checks that every code the devices emit is a catalog ID, in the canonical
// unit, within the catalog's range, so that ingest takes it as it is.
func TestCodesInCatalog(t *testing.T) {
	cat := codes.New()
	check := func(code, unit string, v float64) {
		t.Helper()
		c, ok := cat.Lookup(code)
		if !ok || c.ID != code {
			t.Fatalf("%s is not a catalog ID (lookup gives %q)", code, c.ID)
		}
		if c.Unit != unit {
			t.Fatalf("%s sent in %q, canonical unit is %q", code, unit, c.Unit)
		}
		if v < c.Min || v > c.Max {
			t.Fatalf("%s value %v outside %v..%v", code, v, c.Min, c.Max)
		}
	}
	seen := map[string]bool{}
	for _, sc := range Builtin() {
		p := NewPatient(sc, 1, t0)
		d := 3 * time.Hour // long enough for the first fingerstick of the diabetes scenario
		if sc.Device(ECGPatch) != nil {
			d = 50 * time.Minute // 250 Hz is slow to check sample by sample; faults happen by then
		}
		for _, e := range p.Advance(t0.Add(d)) {
			for _, s := range e.Samples {
				check(s.Code, s.Unit, s.Value)
				seen[s.Code] = true
			}
			for _, c := range e.Chunks {
				for _, v := range c.Values {
					check(c.Code, c.Unit, v)
				}
				seen[c.Code] = true
			}
			if e.Battery != nil {
				check(CodeBattery, unitOf(CodeBattery), *e.Battery)
				seen[CodeBattery] = true
			}
		}
	}
	for _, code := range []string{CodeHeartRate, CodePulseRate, CodeRespRate, CodeSpO2, CodeBodyTemp, CodeSystolic,
		CodeDiastolic, CodeMeanBP, CodeCGM, CodeBloodGlucose, CodeWeight, CodeSteps, CodeECGII, CodePleth, CodeBattery, CodeFall} {
		if !seen[code] {
			t.Errorf("no builtin scenario emits %s", code)
		}
	}
}
