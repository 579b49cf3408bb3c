package fhir_test

import (
	"testing"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
)

// Invasive arterial pressures are vital signs; pulmonary-artery pressures and ECG measures
// are not, and are not left in "activity" either.
func TestCategoryOfBedsideMonitorCodes(t *testing.T) {
	cat := codes.New()
	for id, want := range map[string]string{
		"76215-3": fhir.CatVitalSigns, "76214-6": fhir.CatVitalSigns, "8440-0": fhir.CatProcedure,
		"8414-5": fhir.CatProcedure, "MDC_ECG_V_P_C_CNT": fhir.CatProcedure, "8867-4": fhir.CatVitalSigns,
		"55423-8": fhir.CatActivity, "MDC_ECG_ELEC_POTL_II": fhir.CatProcedure,
	} {
		c, ok := cat.ByID(id)
		if !ok {
			t.Fatalf("%s not in the catalog", id)
		}
		if got := fhir.Category(c); got != want {
			t.Errorf("Category(%s) = %q, want %q", id, got, want)
		}
	}
}
