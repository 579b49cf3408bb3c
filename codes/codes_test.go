package codes_test

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

func mustLookup(t *testing.T, c *codes.Catalog, name string) codes.Code {
	t.Helper()
	code, ok := c.Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%q): not found", name)
	}
	return code
}

func TestLookupNameForms(t *testing.T) {
	c := codes.New()
	cases := []struct{ name, id string }{
		// heart rate: LOINC, MDC ref id in any case, decimal MDC, alias in any case
		{"8867-4", "8867-4"}, {"MDC_ECG_HEART_RATE", "8867-4"}, {"mdc_ecg_heart_rate", "8867-4"},
		{"Mdc_Ecg_Heart_Rate", "8867-4"}, {"147842", "8867-4"}, {"hr", "8867-4"}, {"HR", "8867-4"}, {"Hr", "8867-4"},
		{"MDC_PULS_RATE_NON_INV", "8867-4"}, {"149546", "8867-4"}, {"149522", "8867-4"},
		{"8889-8", "8889-8"}, {"MDC_PULS_OXIM_PULS_RATE", "8889-8"}, {"149530", "8889-8"}, {"pr", "8889-8"}, {"Pulse", "8889-8"},
		{"9279-1", "9279-1"}, {"MDC_RESP_RATE", "9279-1"}, {"151562", "9279-1"}, {"rr", "9279-1"}, {"RESP", "9279-1"},
		{"59408-5", "59408-5"}, {"MDC_PULS_OXIM_SAT_O2", "59408-5"}, {"150456", "59408-5"}, {"spo2", "59408-5"}, {"SpO2", "59408-5"},
		{"2708-6", "2708-6"}, {"sao2", "2708-6"},
		{"8310-5", "8310-5"}, {"MDC_TEMP_BODY", "8310-5"}, {"150364", "8310-5"}, {"temp", "8310-5"},
		{"MDC_TEMP_ORAL", "8310-5"}, {"188424", "8310-5"}, {"mdc_temp_tymp", "8310-5"}, {"150392", "8310-5"},
		{"8480-6", "8480-6"}, {"MDC_PRESS_BLD_NONINV_SYS", "8480-6"}, {"150021", "8480-6"}, {"sbp", "8480-6"}, {"SYS", "8480-6"},
		{"8462-4", "8462-4"}, {"MDC_PRESS_BLD_NONINV_DIA", "8462-4"}, {"150022", "8462-4"}, {"dbp", "8462-4"}, {"dia", "8462-4"},
		{"8478-0", "8478-0"}, {"MDC_PRESS_BLD_NONINV_MEAN", "8478-0"}, {"150023", "8478-0"}, {"map", "8478-0"},
		{"85354-9", "85354-9"}, {"MDC_PRESS_BLD_NONINV", "85354-9"}, {"150020", "85354-9"}, {"bp", "85354-9"},
		{"2339-0", "2339-0"}, {"MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "2339-0"}, {"160184", "2339-0"}, {"glucose", "2339-0"}, {"BG", "2339-0"},
		{"2345-7", "2345-7"}, {"160188", "2345-7"}, {"160196", "2345-7"}, {"MDC_CONC_GLU_VENOUS_PLASMA", "2345-7"}, {"glucose-plasma", "2345-7"},
		{"99504-3", "99504-3"}, {"MDC_CONC_GLU_ISF", "99504-3"}, {"160212", "99504-3"}, {"cgm", "99504-3"}, {"CGM", "99504-3"},
		{"29463-7", "29463-7"}, {"MDC_MASS_BODY_ACTUAL", "29463-7"}, {"188736", "29463-7"}, {"weight", "29463-7"},
		{"8302-2", "8302-2"}, {"188740", "8302-2"}, {"height", "8302-2"},
		{"39156-5", "39156-5"}, {"188752", "39156-5"}, {"bmi", "39156-5"},
		{"55423-8", "55423-8"}, {"steps", "55423-8"}, {"Steps", "55423-8"},
		{"MDC_ECG_ELEC_POTL", "MDC_ECG_ELEC_POTL"}, {"131328", "MDC_ECG_ELEC_POTL"},
		{"MDC_ECG_ELEC_POTL_I", "MDC_ECG_ELEC_POTL_I"}, {"131329", "MDC_ECG_ELEC_POTL_I"}, {"ecg-i", "MDC_ECG_ELEC_POTL_I"},
		{"ecg", "MDC_ECG_ELEC_POTL_II"}, {"ECG", "MDC_ECG_ELEC_POTL_II"}, {"131330", "MDC_ECG_ELEC_POTL_II"}, {"mdc_ecg_elec_potl_ii", "MDC_ECG_ELEC_POTL_II"},
		{"131389", "MDC_ECG_ELEC_POTL_III"}, {"ecg-iii", "MDC_ECG_ELEC_POTL_III"},
		{"131331", "MDC_ECG_ELEC_POTL_V1"}, {"131336", "MDC_ECG_ELEC_POTL_V6"}, {"ECG-aVF", "MDC_ECG_ELEC_POTL_AVF"},
		{"MDC_PULS_OXIM_PLETH", "MDC_PULS_OXIM_PLETH"}, {"150452", "MDC_PULS_OXIM_PLETH"}, {"pleth", "MDC_PULS_OXIM_PLETH"}, {"PPG", "MDC_PULS_OXIM_PLETH"},
		{"MDC_AI_TYPE_SENSOR_FALL", "MDC_AI_TYPE_SENSOR_FALL"}, {"8519681", "MDC_AI_TYPE_SENSOR_FALL"}, {"fall", "MDC_AI_TYPE_SENSOR_FALL"},
		{"MDC_ATTR_VAL_BATT_CHARGE", "MDC_ATTR_VAL_BATT_CHARGE"}, {"67996", "MDC_ATTR_VAL_BATT_CHARGE"}, {"battery", "MDC_ATTR_VAL_BATT_CHARGE"},
		// the ECG watcher's measures: codes of their own, never the devices' heart rate
		{"76282-3", "76282-3"}, {"hr-ecg", "76282-3"}, {"76643-6", "76643-6"}, {"SDNN-ECG", "76643-6"},
	}
	for _, tc := range cases {
		if got := mustLookup(t, c, tc.name); got.ID != tc.id {
			t.Errorf("Lookup(%q).ID = %q, want %q", tc.name, got.ID, tc.id)
		}
	}
}

// Every name form of every code finds that code, in the table's case and folded both ways.
func TestLookupEveryNameOfEveryCode(t *testing.T) {
	c := codes.New()
	for _, code := range c.All() {
		names := []string{code.ID, code.LOINC, code.MDC}
		if code.MDCCode != 0 {
			names = append(names, itoa(code.MDCCode))
		}
		for _, alt := range code.AltMDC {
			names = append(names, alt.RefID, itoa(alt.Code))
		}
		names = append(names, code.Aliases...)
		for _, n := range names {
			if n == "" {
				continue
			}
			for _, v := range []string{n, strings.ToUpper(n), strings.ToLower(n)} {
				if got, ok := c.Lookup(v); !ok || got.ID != code.ID {
					t.Errorf("Lookup(%q) = %q, %v; want %q", v, got.ID, ok, code.ID)
				}
			}
		}
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestLookupMisses(t *testing.T) {
	c := codes.New()
	for _, name := range []string{
		"", "nope", "8867-5", "8867-4x", "147843", "0147842", " hr", "hr ", "h", "MDC_ECG_HEART_RAT",
		"Cel", "%", strings.Repeat("x", 65), strings.Repeat("A", 1000), "hr\x00", "ｈｒ",
	} {
		if code, ok := c.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %q, want no match", name, code.ID)
		}
	}
}

func TestByID(t *testing.T) {
	c := codes.New()
	for _, code := range c.All() {
		got, ok := c.ByID(code.ID)
		if !ok || got.ID != code.ID {
			t.Errorf("ByID(%q) = %q, %v", code.ID, got.ID, ok)
		}
	}
	// ByID is exact: it is for IDs iomt stored, not for names devices send.
	for _, id := range []string{"hr", "147842", "MDC_ECG_HEART_RATE", "mdc_ecg_elec_potl_ii", ""} {
		if got, ok := c.ByID(id); ok {
			t.Errorf("ByID(%q) = %q, want no match", id, got.ID)
		}
	}
}

func TestConvert(t *testing.T) {
	c := codes.New()
	cases := []struct {
		name  string
		value float64
		unit  string
		want  float64
		tol   float64
	}{
		// the figures the brief fixes
		{"temp", 98.6, "degF", 37, 1e-12},
		{"temp", 98.6, "[degF]", 37, 1e-12},
		{"glucose", 5.5, "mmol/L", 99.088, 1e-12},
		{"sbp", 16, "kPa", 120.01, 0.005},
		{"sbp", 16, "kPa", 16 * 1000 / 133.322387415, 1e-12},
		{"weight", 154, "lb", 69.853, 0.0005},
		{"weight", 154, "[lb_av]", 154 * 0.45359237, 1e-12},
		// canonical and empty units pass the value through untouched
		{"hr", 72, "", 72, 0}, {"hr", 72, "/min", 72, 0}, {"temp", 36.6, "Cel", 36.6, 0},
		// every spelling of a rate
		{"hr", 72, "1/min", 72, 0}, {"hr", 72, "beat/min", 72, 0}, {"hr", 72, "beats/min", 72, 0},
		{"hr", 72, "{beats}/min", 72, 0}, {"hr", 72, "{beat}/min", 72, 0}, {"hr", 72, "bpm", 72, 0},
		{"hr", 72, "MDC_DIM_BEAT_PER_MIN", 72, 0}, {"hr", 1.2, "Hz", 72, 1e-12}, {"pr", 1.2, "1/s", 72, 1e-12},
		{"rr", 16, "breaths/min", 16, 0}, {"rr", 16, "{breaths}/min", 16, 0}, {"rr", 16, "/min", 16, 0},
		{"rr", 16, "MDC_DIM_RESP_PER_MIN", 16, 0},
		// saturation: percent, or a ratio read as a fraction of one
		{"spo2", 97, "%", 97, 0}, {"spo2", 0.97, "/", 97, 1e-12}, {"spo2", 0.97, "1", 97, 1e-12},
		{"spo2", 0.97, "/1", 97, 1e-12}, {"sao2", 95, "MDC_DIM_PERCENT", 95, 0},
		// temperature
		{"temp", 310.15, "K", 37, 1e-12}, {"temp", 37, "degC", 37, 0}, {"temp", 212, "°F", 100, 1e-12},
		{"temp", 98.6, "MDC_DIM_FAHR", 37, 1e-12},
		// pressure
		{"dbp", 80, "mmHg", 80, 0}, {"map", 13332.2387415, "Pa", 100, 1e-9}, {"sbp", 18.9, "MDC_DIM_KILO_PASCAL", 141.76, 0.005},
		// glucose, per code: the factor belongs to glucose, not to mg/dL
		{"cgm", 7, "mmol/L", 126.112, 1e-12}, {"glucose-plasma", 5, "mmol/l", 90.08, 1e-12},
		{"bg", 1, "g/L", 100, 1e-12}, {"glucose", 0.0009, "kg/L", 90, 1e-9}, {"glucose", 0.005, "mol/L", 90.08, 1e-9},
		// mass, length, BMI
		{"weight", 80000, "g", 80, 1e-12}, {"weight", 80, "MDC_DIM_KILO_G", 80, 0}, {"weight", 185, "lbs", 83.91458845, 1e-9},
		{"height", 1.8, "m", 180, 1e-12}, {"height", 1800, "mm", 180, 1e-12}, {"height", 66.9, "[in_i]", 169.926, 1e-9},
		{"bmi", 24.7, "kg.m-2", 24.7, 0},
		// counts
		{"steps", 8000, "count", 8000, 0}, {"steps", 8000, "steps", 8000, 0}, {"steps", 8000, "{steps}", 8000, 0},
		// potentials
		{"ecg", 1500, "uV", 1.5, 1e-12}, {"ecg", 1500, "µV", 1.5, 1e-12}, {"ecg-v2", 0.0015, "V", 1.5, 1e-12},
		{"ecg", 1.5, "MDC_DIM_MILLI_VOLT", 1.5, 0},
		// pleth, fall, battery
		{"pleth", 123, "MDC_DIM_DIMLESS", 123, 0}, {"fall", 1, "/", 1, 0},
		{"battery", 55, "%EL", 55, 0}, {"battery", 0.55, "/", 55, 1e-12},
		// intervals: ms, or seconds as UCUM and the HL7 reference messages' MDC_DIM_SEC say them
		{"sdnn-ecg", 42, "ms", 42, 0}, {"sdnn-ecg", 0.042, "s", 42, 1e-12}, {"76643-6", 0.05, "MDC_DIM_SEC", 50, 1e-12},
		{"hr-ecg", 72, "bpm", 72, 0},
	}
	for _, tc := range cases {
		code := mustLookup(t, c, tc.name)
		got, err := c.Convert(code, tc.value, tc.unit)
		if err != nil {
			t.Errorf("Convert(%s, %v, %q): %v", tc.name, tc.value, tc.unit, err)
			continue
		}
		if math.Abs(got-tc.want) > tc.tol {
			t.Errorf("Convert(%s, %v, %q) = %.15g, want %.15g ± %g", tc.name, tc.value, tc.unit, got, tc.want, tc.tol)
		}
	}
}

func TestConvertRefusals(t *testing.T) {
	c := codes.New()
	cases := []struct{ name, unit, msg string }{
		{"hr", "kg", `codes: unit "kg" cannot express Heart rate (8867-4, /min)`},
		{"hr", "breaths/min", `codes: unit "breaths/min" cannot express Heart rate (8867-4, /min)`},
		// "beats" is SenML's cumulative beat count, not a rate
		{"hr", "beats", `codes: unit "beats" cannot express Heart rate (8867-4, /min)`},
		{"rr", "bpm", `codes: unit "bpm" cannot express Respiratory rate (9279-1, /min)`},
		// "C" is coulomb in UCUM and SenML
		{"temp", "C", `codes: unit "C" cannot express Body temperature (8310-5, Cel)`},
		{"temp", "cel", `codes: unit "cel" cannot express Body temperature (8310-5, Cel)`},
		{"spo2", "%RH", `codes: unit "%RH" cannot express Oxygen saturation in Arterial blood by Pulse oximetry (59408-5, %)`},
		// "EL" is SenML's remaining battery time in seconds
		{"battery", "EL", `codes: unit "EL" cannot express Battery charge (MDC_ATTR_VAL_BATT_CHARGE, %)`},
		// "MS" would be megasiemens in UCUM: units are case-sensitive
		{"sdnn-ecg", "MS", `codes: unit "MS" cannot express R-R interval.standard deviation by EKG (76643-6, ms)`},
		{"weight", "mmol/L", `codes: unit "mmol/L" cannot express Body weight (29463-7, kg)`},
		{"glucose", "MG/DL", `codes: unit "MG/DL" cannot express Glucose [Mass/volume] in Blood (2339-0, mg/dL)`},
		{"pleth", "%", `codes: unit "%" cannot express Plethysmogram (pulse oximetry) (MDC_PULS_OXIM_PLETH, 1)`},
		{"ecg", "mm[Hg]", `codes: unit "mm[Hg]" cannot express ECG lead II (MDC_ECG_ELEC_POTL_II, mV)`},
		{"steps", "/min", `codes: unit "/min" cannot express Number of steps in unspecified time Pedometer (55423-8, {steps})`},
		{"bp", "mm[Hg]", `codes: Blood pressure panel with all children optional (85354-9) is a panel and has no value of its own`},
		{"bp", "", `codes: Blood pressure panel with all children optional (85354-9) is a panel and has no value of its own`},
	}
	for _, tc := range cases {
		code := mustLookup(t, c, tc.name)
		_, err := c.Convert(code, 1, tc.unit)
		if err == nil {
			t.Errorf("Convert(%s, %q) accepted, want %q", tc.name, tc.unit, tc.msg)
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("Convert(%s, %q) error\n got %q\nwant %q", tc.name, tc.unit, err, tc.msg)
		}
		var ue *codes.UnitError
		if !errors.As(err, &ue) || ue.Unit != tc.unit || ue.Code.ID != code.ID {
			t.Errorf("Convert(%s, %q): error %#v is not a UnitError for it", tc.name, tc.unit, err)
		}
		if !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("Convert(%s, %q): error does not match iomt.ErrInvalid", tc.name, tc.unit)
		}
	}

	_, err := c.Convert(codes.Code{ID: "1234-5", Unit: "/min"}, 1, "/min")
	var uce *codes.UnknownCodeError
	if err == nil || err.Error() != `codes: unknown code "1234-5"` || !errors.As(err, &uce) || !errors.Is(err, iomt.ErrInvalid) {
		t.Errorf("Convert(unknown code) error = %v", err)
	}
}

// Convert goes by the catalog's entry, not by whatever the caller's copy of the Code says.
func TestConvertUsesCatalogEntry(t *testing.T) {
	c := codes.New()
	code := mustLookup(t, c, "temp")
	code.Unit = "[degF]"
	got, err := c.Convert(code, 98.6, "[degF]")
	if err != nil || math.Abs(got-37) > 1e-12 {
		t.Errorf("Convert with a tampered copy = %v, %v; want 37 Cel", got, err)
	}
}

func TestUnitsAllConvert(t *testing.T) {
	c := codes.New()
	for _, code := range c.All() {
		units := c.Units(code.ID)
		if code.Kind == codes.Panel {
			if len(units) != 0 {
				t.Errorf("%s: a panel accepts units %v", code.ID, units)
			}
			continue
		}
		// A score's unit is the annotation {score}: there is nothing to convert from.
		if len(units) < 2 && code.Kind != codes.Score || len(units) == 0 || units[0] != code.Unit {
			t.Errorf("%s: Units = %v, want the canonical %q first and some synonyms", code.ID, units, code.Unit)
		}
		for _, u := range units {
			if _, err := c.Convert(code, 1, u); err != nil {
				t.Errorf("%s: listed unit %q refused: %v", code.ID, u, err)
			}
		}
	}
	if c.Units("nope") != nil {
		t.Error(`Units("nope") != nil`)
	}
}

func TestRangesHoldTypicalAdultValues(t *testing.T) {
	typical := map[string]float64{
		"8867-4": 72, "8889-8": 72, "9279-1": 16, "59408-5": 97, "2708-6": 97, "8310-5": 36.8,
		"8480-6": 120, "8462-4": 80, "8478-0": 93, "2339-0": 100, "2345-7": 100, "99504-3": 120,
		"29463-7": 70, "8302-2": 175, "39156-5": 23, "55423-8": 8000,
		"MDC_ECG_ELEC_POTL": 1, "MDC_ECG_ELEC_POTL_I": 0.8, "MDC_ECG_ELEC_POTL_II": 1.2, "MDC_ECG_ELEC_POTL_III": 0.5,
		"MDC_ECG_ELEC_POTL_AVR": -0.9, "MDC_ECG_ELEC_POTL_AVL": 0.3, "MDC_ECG_ELEC_POTL_AVF": 0.8,
		"MDC_ECG_ELEC_POTL_V1": -1, "MDC_ECG_ELEC_POTL_V2": -1.5, "MDC_ECG_ELEC_POTL_V3": 0.5,
		"MDC_ECG_ELEC_POTL_V4": 1.8, "MDC_ECG_ELEC_POTL_V5": 1.6, "MDC_ECG_ELEC_POTL_V6": 1.2,
		"MDC_PULS_OXIM_PLETH": 234, "MDC_AI_TYPE_SENSOR_FALL": 1, "MDC_ATTR_VAL_BATT_CHARGE": 80,
		"MDC_PULS_OXIM_DEV_STATUS": 0x0800, // sensor-off
		"3151-8":                   2, "1104441000000107": 1, "1104051000000101": 1,
		"76215-3": 120, "76213-8": 80, "76214-6": 92, "8440-0": 25, "8385-7": 10, "8414-5": 15,
		"MDC_ECG_V_P_C_CNT": 0, "MDC_HF_SPEED": 10, "76282-3": 72, "76643-6": 50,
		"MDC_HF_REPETITION_COUNT": 12, "MDC_HF_RESISTANCE": 20, "MDC_HF_REPETITION": 40,
	}
	c := codes.New()
	for _, code := range c.All() {
		if code.Kind == codes.Panel {
			if code.Min != 0 || code.Max != 0 {
				t.Errorf("%s: a panel has a range", code.ID)
			}
			continue
		}
		v, ok := typical[code.ID]
		if !ok {
			t.Errorf("%s: no typical adult value in this test", code.ID)
			continue
		}
		if !(code.Min < code.Max) || v < code.Min || v > code.Max {
			t.Errorf("%s: typical %v %s outside %v..%v", code.ID, v, code.Unit, code.Min, code.Max)
		}
	}
	// the bounds the brief sets
	for _, b := range []struct {
		name     string
		min, max float64
	}{{"hr", 0, 350}, {"spo2", 0, 100}, {"temp", 20, 46}, {"sbp", 20, 320}, {"glucose", 10, 1000}, {"battery", 0, 100}} {
		if code := mustLookup(t, c, b.name); code.Min != b.min || code.Max != b.max {
			t.Errorf("%s: range %v..%v, want %v..%v", b.name, code.Min, code.Max, b.min, b.max)
		}
	}
}

func TestNamesUnique(t *testing.T) {
	c := codes.New()
	ids := map[string]bool{}
	owner := map[string]string{} // every name form, folded → ID
	claim := func(name, id string) {
		if name == "" {
			return
		}
		f := strings.ToLower(name)
		if prev, ok := owner[f]; ok && prev != id {
			t.Errorf("name %q used by %s and %s", name, prev, id)
		}
		owner[f] = id
	}
	for _, code := range c.All() {
		if ids[code.ID] {
			t.Errorf("duplicate ID %s", code.ID)
		}
		ids[code.ID] = true
		claim(code.ID, code.ID)
		claim(code.LOINC, code.ID)
		claim(code.MDC, code.ID)
		if code.MDCCode != 0 {
			claim(itoa(code.MDCCode), code.ID)
		}
		for _, alt := range code.AltMDC {
			claim(alt.RefID, code.ID)
			claim(itoa(alt.Code), code.ID)
		}
		for _, a := range code.Aliases {
			if a != strings.ToLower(a) || strings.ContainsAny(a, " :/") {
				t.Errorf("%s: alias %q must be lower case without spaces, ':' or '/' (ingest splits names there)", code.ID, a)
			}
			claim(a, code.ID)
		}
	}
	aliases := c.Aliases()
	for a, id := range aliases {
		if owner[a] != id {
			t.Errorf("Aliases()[%q] = %q, want %q", a, id, owner[a])
		}
	}
	if aliases["hr"] != "8867-4" || aliases["ecg"] != "MDC_ECG_ELEC_POTL_II" || aliases["cgm"] != "99504-3" {
		t.Errorf("Aliases() = %v", aliases)
	}
}

// The MDC numbers as documented: in ../shared/data where marked, else in published
// nomenclature tables. Each is checked to be partition<<16 | term and to be what the
// catalog holds.
func TestMDCNumbers(t *testing.T) {
	documented := []struct {
		refID           string
		partition, term uint32
		code            uint32
	}{
		{"MDC_ECG_HEART_RATE", 2, 16770, 147842},                // data: HL7 pcd01-request2
		{"MDC_PULS_OXIM_PULS_RATE", 2, 18458, 149530},           // public
		{"MDC_RESP_RATE", 2, 20490, 151562},                     // public
		{"MDC_PULS_OXIM_SAT_O2", 2, 19384, 150456},              // data: HL7 oximeter, FHIR satO2
		{"MDC_TEMP_BODY", 2, 19292, 150364},                     // public
		{"MDC_TEMP_ORAL", 2, 57352, 188424},                     // data: HL7 thermometer
		{"MDC_PRESS_BLD_NONINV", 2, 18948, 150020},              // data: HL7 bp messages
		{"MDC_PRESS_BLD_NONINV_SYS", 2, 18949, 150021},          // data
		{"MDC_PRESS_BLD_NONINV_DIA", 2, 18950, 150022},          // data
		{"MDC_PRESS_BLD_NONINV_MEAN", 2, 18951, 150023},         // data
		{"MDC_BLD_PULS_RATE_INV", 2, 18450, 149522},             // data: HL7 pcd01-request2
		{"MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", 2, 29112, 160184}, // data: HL7 glucose
		{"MDC_CONC_GLU_CAPILLARY_PLASMA", 2, 29116, 160188},     // public
		{"MDC_CONC_GLU_VENOUS_PLASMA", 2, 29124, 160196},        // public
		{"MDC_CONC_GLU_ISF", 2, 29140, 160212},                  // public
		{"MDC_MASS_BODY_ACTUAL", 2, 57664, 188736},              // data: HL7 scale
		{"MDC_LEN_BODY_ACTUAL", 2, 57668, 188740},               // data: HL7 scale
		{"MDC_RATIO_MASS_BODY_LEN_SQ", 2, 57680, 188752},        // data: HL7 scale
		{"MDC_ECG_ELEC_POTL", 2, 256, 131328},                   // data: FHIR ekg
		{"MDC_ECG_ELEC_POTL_I", 2, 257, 131329},                 // data: FHIR ekg
		{"MDC_ECG_ELEC_POTL_II", 2, 258, 131330},                // data: FHIR ekg
		{"MDC_ECG_ELEC_POTL_III", 2, 317, 131389},               // data: FHIR ekg
		{"MDC_ECG_ELEC_POTL_V1", 2, 259, 131331},                // public
		{"MDC_ECG_ELEC_POTL_V6", 2, 264, 131336},                // public
		{"MDC_ECG_ELEC_POTL_AVF", 2, 320, 131392},               // public
		{"MDC_PULS_OXIM_PLETH", 2, 19380, 150452},               // data: HL7 oximeter
		{"MDC_AI_TYPE_SENSOR_FALL", 130, 1, 8519681},            // public
		{"MDC_ATTR_VAL_BATT_CHARGE", 1, 2460, 67996},            // public
	}
	c := codes.New()
	for _, d := range documented {
		if got := d.partition<<16 | d.term; got != d.code {
			t.Errorf("%s: %d<<16|%d = %d, documented %d", d.refID, d.partition, d.term, got, d.code)
		}
		code := mustLookup(t, c, d.refID)
		held := code.MDCCode
		if code.MDC != d.refID {
			held = 0
			for _, alt := range code.AltMDC {
				if alt.RefID == d.refID {
					held = alt.Code
				}
			}
		}
		if held != d.code {
			t.Errorf("%s: catalog holds %d, documented %d", d.refID, held, d.code)
		}
	}
	// Every MDC number in the catalog lies in a partition iomt knows.
	for _, code := range c.All() {
		terms := append([]codes.MDCTerm{{RefID: code.MDC, Code: code.MDCCode}}, code.AltMDC...)
		for _, m := range terms {
			if m.RefID == "" {
				if m.Code != 0 {
					t.Errorf("%s: MDC number %d without reference id", code.ID, m.Code)
				}
				continue
			}
			if p := m.Code >> 16; !slices.Contains([]uint32{1, 2, 4, 128, 129, 130}, p) {
				t.Errorf("%s: %s = %d is not partition<<16|term in a known partition", code.ID, m.RefID, m.Code)
			}
		}
	}
}

// The vital-signs value set of FHIR R4 (../shared/data/fhir/r4-vitalsigns-profiles).
var fhirVitalSigns = []string{"85353-1", "9279-1", "8867-4", "2708-6", "8310-5", "8302-2", "9843-4", "29463-7", "39156-5", "85354-9", "8480-6", "8462-4", "8478-0"}

func TestCodeInvariants(t *testing.T) {
	c := codes.New()
	for _, code := range c.All() {
		switch {
		case code.LOINC != "" && code.ID != code.LOINC:
			t.Errorf("%s: ID is not the LOINC code %s", code.ID, code.LOINC)
		case code.LOINC == "" && code.SNOMED != "" && code.ID != code.SNOMED:
			t.Errorf("%s: ID is not the SNOMED CT concept %s", code.ID, code.SNOMED)
		case code.LOINC == "" && code.SNOMED == "" && (code.MDC == "" || code.ID != code.MDC):
			t.Errorf("%s: without LOINC or SNOMED CT the ID must be the MDC reference id (%q)", code.ID, code.MDC)
		}
		if code.Display == "" || strings.HasPrefix(code.Kind.String(), "Kind(") {
			t.Errorf("%s: display %q, kind %v", code.ID, code.Display, code.Kind)
		}
		if (code.Kind == codes.Panel) != (code.Unit == "") {
			t.Errorf("%s: kind %v with unit %q", code.ID, code.Kind, code.Unit)
		}
		if (code.Kind == codes.Panel) != (len(code.Components) > 0) {
			t.Errorf("%s: kind %v with components %v", code.ID, code.Kind, code.Components)
		}
		for _, id := range code.Components {
			if _, ok := c.ByID(id); !ok {
				t.Errorf("%s: component %s is not in the catalog", code.ID, id)
			}
		}
		if code.Kind == codes.Waveform {
			if !(code.Scale > 0) || code.Max/code.Scale > math.MaxInt32 || code.Min/code.Scale < math.MinInt32 {
				t.Errorf("%s: scale %v and range %v..%v do not fit int32 samples", code.ID, code.Scale, code.Min, code.Max)
			}
		} else if code.Scale != 0 {
			t.Errorf("%s: scale %v on a %v code", code.ID, code.Scale, code.Kind)
		}
		if code.FHIRVitalSigns != (code.VitalSignsLOINC != "") {
			t.Errorf("%s: FHIRVitalSigns %v but VitalSignsLOINC %q", code.ID, code.FHIRVitalSigns, code.VitalSignsLOINC)
		}
		if code.VitalSignsLOINC != "" && !slices.Contains(fhirVitalSigns, code.VitalSignsLOINC) {
			t.Errorf("%s: %s is not in FHIR's vital-signs value set", code.ID, code.VitalSignsLOINC)
		}
		if slices.Contains(fhirVitalSigns, code.LOINC) && !code.FHIRVitalSigns {
			t.Errorf("%s: in FHIR's vital-signs value set but FHIRVitalSigns is false", code.ID)
		}
	}
}

func TestAllIsStableAndACopy(t *testing.T) {
	c := codes.New()
	a, b := c.All(), c.All()
	if len(a) != len(b) || len(a) < 30 {
		t.Fatalf("All() returned %d then %d codes", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Fatalf("All() order differs at %d: %s vs %s", i, a[i].ID, b[i].ID)
		}
	}
	if a[0].ID != "8867-4" {
		t.Errorf("All()[0] = %s, want heart rate first", a[0].ID)
	}
	a[0] = codes.Code{ID: "changed"}
	if c.All()[0].ID != "8867-4" {
		t.Error("changing All()'s result changed the catalog")
	}
	// Catalogs are independent: there is no shared package-level table.
	code, _ := c.Lookup("hr")
	code.Aliases[0] = "changed"
	if _, ok := codes.New().Lookup("hr"); !ok {
		t.Error("changing one catalog's aliases changed a new catalog")
	}
}

func TestKindText(t *testing.T) {
	for _, k := range []codes.Kind{codes.Vital, codes.Waveform, codes.Event, codes.DeviceStatus, codes.Panel, codes.Score, codes.SensorStatus} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back codes.Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("Kind %v round trip: %v, %v", k, back, err)
		}
	}
	var k codes.Kind
	if err := k.UnmarshalText([]byte("vitals")); err == nil || err.Error() != `codes: unknown kind "vitals"` {
		t.Errorf("UnmarshalText(vitals) error = %v", err)
	}
	if got := codes.Kind(0).String(); got != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", got)
	}
	code, _ := codes.New().Lookup("hr")
	b, err := json.Marshal(code)
	if err != nil || !strings.Contains(string(b), `"kind":"vital"`) || !strings.Contains(string(b), `"mdc_code":147842`) {
		t.Errorf("json.Marshal(heart rate) = %s, %v", b, err)
	}
}

func TestLookupAndConvertDoNotAllocate(t *testing.T) {
	c := codes.New()
	code, _ := c.Lookup("spo2")
	for _, name := range []string{"hr", "8867-4", "150456", "SpO2", "mdc_ecg_heart_rate", "unknown-name"} {
		if n := testing.AllocsPerRun(100, func() { c.Lookup(name) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times", name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.Convert(code, 0.97, "/") }); n != 0 {
		t.Errorf("Convert allocates %v times", n)
	}
}

func TestOximeterQuality(t *testing.T) {
	for _, c := range []struct {
		bits      uint16
		off, poor bool
	}{
		{0, false, false},
		{codes.OxSensorDisconnected, true, false},
		{codes.OxSensorDisplaced, true, false},
		{codes.OxSensorOff, true, false},
		{codes.OxSensorMalfunction, false, true},
		{codes.OxSearching, false, true},
		{codes.OxPoor | codes.OxInadequate, false, true},
		{codes.OxLowPerfusion, false, false}, // the patient's state, not the signal's
		{codes.OxExtendedUpdate, false, false},
		{codes.OxSensorDisconnected | codes.OxPoor, true, true},
		{0x0800, true, false}, // sensor-off as a number: bit 4 of the standard
	} {
		off, poor := codes.OximeterQuality(c.bits)
		if off != c.off || poor != c.poor {
			t.Errorf("%#04x: probe off %v, poor %v; want %v, %v", c.bits, off, poor, c.off, c.poor)
		}
	}
}
