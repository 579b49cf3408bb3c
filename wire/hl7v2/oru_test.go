package hl7v2_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
)

var dataDir = filepath.Join("..", "..", "..", "shared", "data", "hl7v2")

// readData returns a reference message, skipping the test in a plain clone.
func readData(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("reference data %s is absent (see ../shared/data/README); skipping", filepath.Join(dataDir, name))
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t testing.TB, b []byte) *hl7v2.Report {
	t.Helper()
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r, err := hl7v2.DecodeORU(m, codes.New())
	if err != nil {
		t.Fatalf("DecodeORU: %v", err)
	}
	return r
}

// find returns the observations with this MDC reference id in OBX-3.
func find(r *hl7v2.Report, refid string) []hl7v2.Observation {
	var out []hl7v2.Observation
	for _, o := range r.Orders {
		for _, obs := range o.Observations {
			if obs.Code.Text == refid {
				out = append(out, obs)
			}
		}
	}
	return out
}

type want struct {
	refid, code, unit string
	value             float64
	time              string // RFC 3339, UTC
	device            string
}

func checkMapped(t *testing.T, r *hl7v2.Report, w want) {
	t.Helper()
	obs := find(r, w.refid)
	if len(obs) == 0 {
		t.Fatalf("no OBX %s", w.refid)
	}
	o := obs[0]
	if o.Mapped == nil {
		t.Fatalf("%s not mapped: %s", w.refid, o.Unmapped)
	}
	if o.Mapped.Code != w.code || o.Mapped.Unit != w.unit || math.Abs(o.Mapped.Value-w.value) > 1e-9 {
		t.Errorf("%s = %s %v %s, want %s %v %s", w.refid, o.Mapped.Code, o.Mapped.Value, o.Mapped.Unit, w.code, w.value, w.unit)
	}
	if o.Time == nil || o.Time.Time.Format(time.RFC3339Nano) != w.time {
		t.Errorf("%s time = %v, want %s", w.refid, o.Time, w.time)
	}
	if o.Device != w.device {
		t.Errorf("%s device = %q, want %q", w.refid, o.Device, w.device)
	}
}

const eui = "0123456789ABCDEF"

func TestReferenceMessages(t *testing.T) {
	cases := map[string][]want{
		"ipf_valid-oximeter-continua-wan.hl7v2": {
			{"MDC_PULS_OXIM_SAT_O2", "59408-5", "%", 80.5, "2009-07-15T07:07:07Z", eui},
		},
		"ipf_valid-pcd01-request.hl7v2": {
			// No OBX-14 of their own: the time of the NIBP channel (1.0.1) applies.
			{"MDC_PRESS_BLD_NONINV_SYS", "8480-6", "mm[Hg]", 120, "2009-08-13T04:57:15Z", eui},
			{"MDC_PRESS_BLD_NONINV_DIA", "8462-4", "mm[Hg]", 80, "2009-08-13T04:57:15Z", eui},
			{"MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "mm[Hg]", 100, "2009-08-13T04:57:15Z", eui},
		},
		"ipf_valid-pcd01-request2.hl7v2": {
			// UCUM units; no offset anywhere, so OBR-7 is read as UTC.
			{"MDC_ECG_HEART_RATE", "8867-4", "/min", 60, "2008-12-11T14:45:00Z", ""},
			{"MDC_BLD_PULS_RATE_INV", "8867-4", "/min", 60, "2008-12-11T14:45:00Z", ""},
		},
		"ipf_valid-bp-continua-wan.hl7v2": {
			{"MDC_PRESS_BLD_NONINV_SYS", "8480-6", "mm[Hg]", 120, "2009-08-13T09:57:15Z", eui},
			{"MDC_PRESS_BLD_NONINV_DIA", "8462-4", "mm[Hg]", 80, "2009-08-13T09:57:15Z", eui},
		},
		"ipf_valid-glucose-continua-wan.hl7v2": {
			{"MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "2339-0", "mg/dL", 37.5, "2009-07-15T07:07:07Z", eui},
		},
		"ipf_valid-thermometer-continua-wan.hl7v2": {
			// 98.6 degF is 37 Cel.
			{"MDC_TEMP_ORAL", "8310-5", "Cel", 37, "2009-07-15T07:07:07Z", eui},
		},
		"ipf_valid-scale-continua-wan.hl7v2": {
			{"MDC_MASS_BODY_ACTUAL", "29463-7", "kg", 80, "2009-08-15T07:07:07Z", eui},
			{"MDC_LEN_BODY_ACTUAL", "8302-2", "cm", 180, "2009-08-15T07:07:07Z", eui},
			{"MDC_RATIO_MASS_BODY_LEN_SQ", "39156-5", "kg/m2", 24.7, "2009-08-15T07:07:07Z", eui},
		},
		"ipf_valid-pcd01-MaximumRequest2.hl7": {
			{"MDC_PRESS_BLD_NONINV_SYS", "8480-6", "mm[Hg]", 140, "2009-08-13T04:57:25Z", eui},
			{"MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "mm[Hg]", 100, "2009-08-13T04:57:15Z", eui},
		},
		"ipf_valid-fitness-continua-wan.hl7v2": {
			// 12 lb is 5.443 kg; 120 inches of travel is 304.8 cm.
			{"MDC_HF_REPETITION_COUNT", "MDC_HF_REPETITION_COUNT", "{count}", 25, "2009-07-15T07:07:07Z", eui},
			{"MDC_HF_RESISTANCE", "MDC_HF_RESISTANCE", "kg", 12 * 0.45359237, "2009-07-15T07:07:07Z", eui},
			{"MDC_HF_REPETITION", "MDC_HF_REPETITION", "cm", 304.8, "2009-07-15T07:07:07Z", eui},
		},
		"ipf_valid-fitness-and-activity-continua-wan.hl7v2": {
			// 500 m/min is 30 km/h.
			{"MDC_HF_SPEED", "MDC_HF_SPEED", "km/h", 30, "2009-07-15T07:07:07Z", eui},
		},
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "ipf_valid-*"))
	if len(files) == 0 {
		t.Skipf("reference data in %s is absent; skipping", dataDir)
	}
	if len(files) != len(cases) {
		t.Errorf("%d valid messages in %s, the test knows %d", len(files), dataDir, len(cases))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			wants, ok := cases[name]
			if !ok {
				t.Fatalf("no expectations for %s", name)
			}
			r := decode(t, readData(t, name))
			n := 0
			for _, o := range r.Orders {
				n += len(o.Observations)
				for _, obs := range o.Observations {
					numeric := obs.ValueType == "NM" || obs.ValueType == "NA"
					if numeric && obs.Mapped == nil && obs.Unmapped == "" {
						t.Errorf("OBX %s %s: numeric, neither mapped nor said unmapped", obs.SetID, obs.Code.Text)
					}
				}
			}
			if n == 0 {
				t.Fatal("no observations")
			}
			for _, w := range wants {
				checkMapped(t, r, w)
			}
			// Every reading ingest would get is in the catalog's terms.
			cat := codes.New()
			for _, rd := range r.Readings() {
				c, ok := cat.ByID(rd.Code)
				if !ok || c.Unit != rd.Unit || rd.Time.Location() != time.UTC {
					t.Errorf("reading %+v is not in the catalog's terms", rd)
				}
			}
		})
	}
}

func TestOximeterDetails(t *testing.T) {
	r := decode(t, readData(t, "ipf_valid-oximeter-continua-wan.hl7v2"))
	if r.ControlID != "MSGID1234" || r.Patient.ID != "789567" || r.Patient.Family != "Doe" {
		t.Errorf("header/patient: %q %+v", r.ControlID, r.Patient)
	}
	if r.Patient.Identifiers[0].Type != "PI" || r.Patient.Identifiers[0].Authority != "Imaginary Hospital" {
		t.Errorf("PID-3 = %+v", r.Patient.Identifiers)
	}
	spo2 := find(r, "MDC_PULS_OXIM_SAT_O2")[0]
	if spo2.Code.Code != "150456" || spo2.Code.System != "MDC" || spo2.SubID != "1.0.0.1" ||
		len(spo2.Containment) != 4 || spo2.Containment[3] != 1 || spo2.Unit.Text != "MDC_DIM_PERCENT" ||
		spo2.Unit.Code != "262688" || spo2.Status != "R" || spo2.Time.Precision != hl7v2.Second || !spo2.Time.HasOffset {
		t.Errorf("SpO2 OBX = %+v", spo2)
	}
	pleth := find(r, "MDC_PULS_OXIM_PLETH")[0]
	if pleth.ValueType != "NA" || len(pleth.Values) != 10 || pleth.Mapped == nil || len(pleth.Mapped.Values) != 10 ||
		pleth.Mapped.Values[4] != 234 || pleth.Mapped.Code != "MDC_PULS_OXIM_PLETH" {
		t.Errorf("pleth = %+v %+v", pleth, pleth.Mapped)
	}
	mds := find(r, "MDC_DEV_SPEC_PROFILE_PULS_OXIM")[0]
	if len(mds.Equipment) != 1 || mds.Equipment[0].ID != eui || mds.Equipment[0].Namespace != "EUI-64" {
		t.Errorf("OBX-18 = %+v", mds.Equipment)
	}
	rd := r.Readings()
	if len(rd) != 1 || rd[0] != (iomt.Observation{Patient: "789567", Device: eui, Code: "59408-5",
		Time: time.Date(2009, 7, 15, 7, 7, 7, 0, time.UTC), Value: 80.5, Unit: "%"}) {
		t.Errorf("Readings = %+v", rd)
	}
}

func TestMaximumRequest(t *testing.T) {
	r := decode(t, readData(t, "ipf_valid-pcd01-MaximumRequest2.hl7"))
	if len(r.Orders) != 2 {
		t.Fatalf("%d OBR groups, want 2", len(r.Orders))
	}
	o := r.Orders[0]
	if len(o.Notes) != 2 || o.Notes[0] != "This is another test message1" || o.Notes[1] != hl7v2.Null {
		t.Errorf("OBR notes = %q", o.Notes)
	}
	if o.ObservedEnd == nil || o.ObservedEnd.Time.Format(time.RFC3339) != "2009-08-13T05:57:15Z" {
		t.Errorf("OBR-8 = %v", o.ObservedEnd)
	}
	sys := find(r, "MDC_PRESS_BLD_NONINV_SYS")
	if len(sys[0].Methods) != 2 || sys[0].Methods[1].Code != "MMEAS" || len(sys[0].Equipment) != 2 ||
		sys[0].Equipment[1].ID != "1305816209" || sys[0].Equipment[1].UniversalID != eui || sys[0].Status != "C" {
		t.Errorf("repetitions in OBX-17/18: %+v", sys[0])
	}
	dia := find(r, "MDC_PRESS_BLD_NONINV_DIA")[0]
	if len(dia.Flags) != 2 || dia.Flags[1] != "QUES" || len(dia.Notes) != 2 || !strings.Contains(dia.Unmapped, "status D") {
		t.Errorf("diastolic: flags %q notes %q unmapped %q", dia.Flags, dia.Notes, dia.Unmapped)
	}
	// Code 1500212 named MDC_PRESS_BLD_NONINV_SYS: code and name disagree, so not mapped.
	if len(sys) != 3 || sys[1].Mapped != nil || !strings.Contains(sys[1].Unmapped, "1500212") {
		t.Errorf("conflicting code: %+v", sys[1])
	}
	if r.Unmapped == 0 {
		t.Error("unmapped count is 0")
	}
}

// Every numeric observation of the IHE PCD-01 sample maps, invasive pressures and the PVC
// rate included, each to its own code and not to the cuff's.
func TestPCD01ObservationsAllMap(t *testing.T) {
	r := decode(t, readData(t, "ipf_valid-pcd01-request2.hl7v2"))
	if r.Unmapped != 0 {
		t.Errorf("unmapped = %d, want 0", r.Unmapped)
	}
	for name, want := range map[string]struct {
		code string
		v    float64
	}{
		"MDC_ECG_V_P_C_CNT": {"MDC_ECG_V_P_C_CNT", 0}, "MDC_PRESS_BLD_ART_SYS": {"76215-3", 120},
		"MDC_PRESS_BLD_ART_DIA": {"76213-8", 80}, "MDC_PRESS_BLD_ART_MEAN": {"76214-6", 92},
		"MDC_PRESS_BLD_ART_PULM_SYS": {"8440-0", 25}, "MDC_PRESS_BLD_ART_PULM_DIA": {"8385-7", 10},
		"MDC_PRESS_BLD_ART_PULM_MEAN": {"8414-5", 14},
	} {
		o := find(r, name)
		if len(o) != 1 || o[0].Mapped == nil || o[0].Mapped.Code != want.code || o[0].Mapped.Value != want.v {
			t.Errorf("%s: %+v, want %s = %v", name, o, want.code, want.v)
		}
	}
}

func TestInvalidReferenceMessage(t *testing.T) {
	b := readData(t, "ipf_invalid-glucose-continua-wan.hl7v2")
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = hl7v2.DecodeORU(m, codes.New())
	var he *hl7v2.Error
	if !errors.As(err, &he) {
		t.Fatalf("accepted or not an *Error: %v", err)
	}
	if he.Code != hl7v2.RequiredFieldMissing || he.Segment != "OBX" || he.SegmentSeq != 8 || he.Field != 2 ||
		!strings.Contains(he.Reason, "OBX-2 (value type) is empty while OBX-5 holds a value") {
		t.Errorf("refusal %+v", he)
	}
	ack := string(hl7v2.Ack(m, err, hl7v2.AckOptions{ControlID: "A1", Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}).Encode())
	for _, s := range []string{"\rMSA|AE|MSGID1234\r", "\rERR||OBX^8^2^1|101^Required field missing^HL70357|E||||OBX-2 (value type) is empty"} {
		if !strings.Contains(ack, s) {
			t.Errorf("ACK lacks %q:\n%s", s, strings.ReplaceAll(ack, "\r", "\n"))
		}
	}
}

const header = "MSH|^~\\&|Dev|Fac|iomt|Hosp|20240102030405+0000||ORU^R01|C1|P|2.6\r"

func TestORURefusals(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		code      hl7v2.ErrorCode
		ack       string
		reason    string
	}{
		{"type", strings.Replace(header, "ORU^R01", "ADT^A01", 1), hl7v2.UnsupportedMessageType, "AR", `message type "ADT"`},
		{"event", strings.Replace(header, "ORU^R01", "ORU^R30", 1), hl7v2.UnsupportedEventCode, "AR", `trigger event "R30"`},
		{"processing", strings.Replace(header, "|P|", "|Q|", 1), hl7v2.UnsupportedProcessing, "AR", `processing id "Q"`},
		{"version", strings.Replace(header, "|2.6", "|3.0", 1), hl7v2.UnsupportedVersion, "AR", `version "3.0"`},
		{"control id", strings.Replace(header, "|C1|", "||", 1), hl7v2.RequiredFieldMissing, "AE", "MSH-10"},
		{"MSH-7", strings.Replace(header, "20240102030405+0000", "2024-01-02", 1) + "OBR|1\r", hl7v2.DataTypeError, "AE", "MSH-7"},
		{"no OBR", header + "PID|||1\r", hl7v2.SegmentSequenceError, "AE", "no OBR"},
		{"OBX first", header + "OBX|1|NM|150456^^MDC|1|97|%^^UCUM|||||R\r", hl7v2.SegmentSequenceError, "AE", "OBX before any OBR"},
		{"empty PID-3", header + "PID|1\rOBR|1\r", hl7v2.RequiredFieldMissing, "AE", "PID-3"},
		{"OBX-3", header + "OBR|1\rOBX|1|NM||1|97|%^^UCUM|||||R\r", hl7v2.RequiredFieldMissing, "AE", "OBX-3"},
		{"value type", header + "OBR|1\rOBX|1|XX|150456^^MDC|1|97|||||||R\r", hl7v2.TableValueNotFound, "AE", "table 0125"},
		{"status", header + "OBR|1\rOBX|1|NM|150456^^MDC|1|97||||||Q\r", hl7v2.TableValueNotFound, "AE", "table 0085"},
		{"NM", header + "OBR|1\rOBX|1|NM|150456^^MDC|1|9x7|%^^UCUM|||||R\r", hl7v2.DataTypeError, "AE", "not a valid NM"},
		{"NM exponent", header + "OBR|1\rOBX|1|NM|150456^^MDC|1|1e2|%^^UCUM|||||R\r", hl7v2.DataTypeError, "AE", "not a valid NM"},
		{"OBX-14", header + "OBR|1\rOBX|1|NM|150456^^MDC|1|97|%^^UCUM|||||R|||20241301\r", hl7v2.DataTypeError, "AE", "OBX-14"},
		{"OBR-7", header + "OBR|1||||||yesterday\r", hl7v2.DataTypeError, "AE", "OBR-7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mustParse(t, c.msg)
			_, err := hl7v2.DecodeORU(m, codes.New())
			var he *hl7v2.Error
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want an *hl7v2.Error", err)
			}
			if he.Code != c.code || he.AckCode() != c.ack || !strings.Contains(err.Error(), c.reason) || !errors.Is(err, iomt.ErrInvalid) {
				t.Errorf("got %d %s %q, want %d %s %q", he.Code, he.AckCode(), err, c.code, c.ack, c.reason)
			}
		})
	}
}

func TestMappingReasons(t *testing.T) {
	for _, c := range []struct{ obx, want string }{
		{"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97||||||R|||20240102030405", "OBX-6 (units) is empty"},
		{"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|266016^MDC_DIM_MMHG^MDC|||||R|||20240102030405", "unit 266016 (MDC_DIM_MMHG)"},
		{"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|197|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030405", "outside the possible range"},
		{"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC|||||R", "no observation time"},
		{"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC||||||||20240102030405", "OBX-11 (result status) is empty"},
		{"OBX|1|NM|150020^MDC_PRESS_BLD_NONINV^MDC|1|97|266016^MDC_DIM_MMHG^MDC|||||R|||20240102030405", "panel"},
		{"OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_DIA^MDC|1|97|266016^MDC_DIM_MMHG^MDC|||||R|||20240102030405", "the code means 8480-6 but the text means 8462-4"},
		{"OBX|1|SN|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|<^90|262688^MDC_DIM_PERCENT^MDC|||||R|||20240102030405", `structured numeric "<90"`},
	} {
		r := decode(t, []byte(header+"OBR|1\r"+c.obx+"\r"))
		o := r.Orders[0].Observations[0]
		if o.Mapped != nil || !strings.Contains(o.Unmapped, c.want) {
			t.Errorf("%s:\n mapped %+v, unmapped %q, want %q", c.obx, o.Mapped, o.Unmapped, c.want)
		}
	}
	// A plain SN and an SN with "=" comparator-free value map; kPa converts.
	r := decode(t, []byte(header+"OBR|1\r"+
		"OBX|1|SN|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|^97|262688^MDC_DIM_PERCENT^MDC|||||F|||20240102030405\r"+
		"OBX|2|NM|150021^^MDC|1|16|kPa^^UCUM|||||F|||20240102030405\r"))
	if o := r.Orders[0].Observations[0]; o.Mapped == nil || o.Mapped.Value != 97 {
		t.Errorf("SN ^97: %+v %q", o.Mapped, o.Unmapped)
	}
	if o := r.Orders[0].Observations[1]; o.Mapped == nil || math.Abs(o.Mapped.Value-120.01) > 0.01 {
		t.Errorf("16 kPa: %+v %q", o.Mapped, o.Unmapped)
	}
}

// A pulse oximeter's device and sensor status (MDC_PULS_OXIM_DEV_STATUS, a BITS-16) written as
// the Continua WAN interface writes BITS, state^name(bit) per bit, maps to its value as a number
// (bit n of the standard is 1 << (15 − n)), which the alarm engine reads as probe off or poor
// signal; a bit that cannot be read leaves the observation unmapped with the reason.
func TestOximeterStatusBits(t *testing.T) {
	const obx = "OBX|2|CWE|150604^MDC_PULS_OXIM_DEV_STATUS^MDC|1.0.0.2|%s||||||R|||20240102030405\r"
	for _, c := range []struct {
		value  string
		bits   float64
		reason string
	}{
		{"1^sensor-off(4)", codes.OxSensorOff, ""},
		{"1^sensor-disconnected(0)~1^signal-searching(6)", codes.OxSensorDisconnected | codes.OxSearching, ""},
		{"0^sensor-off(4)", 0, ""},
		{"Y^sensor-displaced(2)~N^sensor-off(4)", codes.OxSensorDisplaced, ""},
		{"1^sensor-off", 0, `bit "sensor-off": not name(bit)`},
		{"1^sensor-off(16)", 0, "bit number 0–15"},
		{"2^sensor-off(4)", 0, `state "2" is neither 1 (set) nor 0 (cleared)`},
	} {
		r := decode(t, []byte(header+"OBR|1\r"+fmt.Sprintf(obx, c.value)))
		o := r.Orders[0].Observations[0]
		if c.reason != "" {
			if o.Mapped != nil || !strings.Contains(o.Unmapped, c.reason) {
				t.Errorf("%s: mapped %+v, unmapped %q, want %q", c.value, o.Mapped, o.Unmapped, c.reason)
			}
			continue
		}
		if o.Mapped == nil || o.Mapped.Code != codes.OximeterStatus || o.Mapped.Value != c.bits || o.Mapped.Unit != "1" {
			t.Errorf("%s: mapped %+v (unmapped %q), want %s = %v", c.value, o.Mapped, o.Unmapped, codes.OximeterStatus, c.bits)
		}
	}
	// No value is no reading — not a status with every bit clear, which would end a probe-off.
	for _, v := range []string{"^", "~", `""`, "\\.sp0\\"} {
		r := decode(t, []byte(header+"OBR|1\r"+fmt.Sprintf(obx, v)))
		if o := r.Orders[0].Observations[0]; o.Mapped != nil || o.Unmapped != "" || len(r.Readings()) != 0 {
			t.Errorf("value %s: mapped %+v, unmapped %q, want neither", v, o.Mapped, o.Unmapped)
		}
	}
	// A status whose code and name disagree says so.
	r0 := decode(t, []byte(header+"OBR|1\r"+
		"OBX|1|CWE|150604^MDC_PULS_OXIM_SAT_O2^MDC|1|1^sensor-off(4)||||||R|||20240102030405\r"))
	if o := r0.Orders[0].Observations[0]; o.Mapped != nil || !strings.Contains(o.Unmapped, "the code means") {
		t.Errorf("code and name disagree: mapped %+v, unmapped %q", o.Mapped, o.Unmapped)
	}
	// A coded value of another kind is no reading and no fault: the reference glucose message's
	// meter status and a CWE SpO2 are left alone.
	r := decode(t, []byte(header+"OBR|1\r"+
		"OBX|1|CWE|8417752^MDC_GLU_METER_DEV_STATUS^MDC|1|1^sensor-strip-insertion(3)||||||R|||20240102030405\r"+
		"OBX|2|CWE|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97^high||||||R|||20240102030405\r"))
	for _, o := range r.Orders[0].Observations {
		if o.Mapped != nil || o.Unmapped != "" {
			t.Errorf("%s: mapped %+v, unmapped %q; want neither", o.Code.Text, o.Mapped, o.Unmapped)
		}
	}
}

// A time without an offset is read at MSH-7's offset, as HL7 intends.
func TestSenderOffset(t *testing.T) {
	msg := strings.Replace(header, "+0000", "-0500", 1) + "OBR|1\rOBX|1|NM|150456^^MDC|1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||202401020304\r"
	r := decode(t, []byte(msg))
	o := r.Orders[0].Observations[0]
	if o.Time.Time.Format(time.RFC3339) != "2024-01-02T08:04:00Z" || o.Time.HasOffset || o.Time.Precision != hl7v2.Minute {
		t.Errorf("time %+v", o.Time)
	}
	if !strings.Contains(r.Assumption, "-0500") {
		t.Errorf("assumption %q", r.Assumption)
	}
}
