package gatt

import (
	"math"
	"testing"

	"github.com/iomt/iomt/codes"
)

// TestReadings checks the codes and the conversions against the catalog: each reading's code
// exists, its unit is the code's canonical unit, and its value is what codes.Catalog.Convert
// makes of the device's value in the device's unit.
func TestReadings(t *testing.T) {
	cat := codes.New()
	type want struct {
		code       string
		devValue   float64
		devUnit    string
		canonValue float64 // by hand, to 1e-6 relative; the catalog's value to 1e-12
	}
	for _, c := range []struct {
		uuid uint16
		hex  string
		want []want
	}{
		{0x2A37, "00 55", []want{{"8867-4", 85, "/min", 85}}},
		{0x2A35, "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00", []want{
			{"8480-6", 138, "mm[Hg]", 138}, {"8462-4", 88, "mm[Hg]", 88}, {"8478-0", 120, "mm[Hg]", 120}, {"8867-4", 60, "/min", 60}}},
		{0x2A35, "15 BD F0 0B 00 9F F0 3C 00 12 00", []want{
			{"8480-6", 18.9, "kPa", 141.7616}, {"8462-4", 11, "kPa", 82.5068}, {"8478-0", 15.9, "kPa", 119.2598}, {"8867-4", 60, "/min", 60}}},
		// MAP NaN (0x07FF): no mean reading.
		{0x2A35, "00 78 00 50 00 FF 07", []want{{"8480-6", 120, "mm[Hg]", 120}, {"8462-4", 80, "mm[Hg]", 80}}},
		{0x2A1C, "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04", []want{{"8310-5", 37.6, "Cel", 37.6}}},
		{0x2A1C, "01 DA 03 00 FF", []want{{"8310-5", 98.6, "[degF]", 37}}},
		{0x2A1C, "00 FF FF 7F 00", nil}, // NaN temperature
		// Capillary whole blood, 1e-3 kg/L = 100 mg/dL.
		{0x2A18, "02 01 00 E3 07 02 1B 0B 0A 1E 01 D0 11", []want{{"2339-0", 0.001, "kg/L", 100}}},
		// Capillary plasma in mol/L: 5.5e-3 mol/L = 5.5 mmol/L = 99.088 mg/dL.
		{0x2A18, "06 01 00 E3 07 02 1B 0B 0A 1E 37 C0 12", []want{{"2345-7", 0.0055, "mol/L", 99.088}}},
		// Control solution: no reading.
		{0x2A18, "02 01 00 E3 07 02 1B 0B 0A 1E 01 D0 1A", nil},
		{0x2AA7, "06 00 0C 10 05 00 06 00 0C 10 06 00", []want{{"99504-3", 120, "mg/dL", 120}, {"99504-3", 120, "mg/dL", 120}}},
		{0x2A5F, "00 E8 F3 84 F3", []want{{"59408-5", 100, "%", 100}, {"8889-8", 90, "/min", 90}}},
		// Device and sensor status 0x000022: equipment malfunction and low perfusion, forwarded.
		{0x2A5E, "0F AC F3 BE F5 E8 07 0B 1D 17 08 39 20 40 22 00 00 66 E3", []want{{"59408-5", 94, "%", 94}, {"8889-8", 147, "/min", 147},
			{"MDC_PULS_OXIM_DEV_STATUS", 0x22, "1", 0x22}}},
		// Measurement status "invalid measurement detected": no reading.
		{0x2A5F, "04 E8 F3 84 F3 00 80", nil},
		// Sensor not connected to the user (status bit 11): the status, not the values.
		{0x2A5F, "08 E8 F3 84 F3 00 08 00", []want{{"MDC_PULS_OXIM_DEV_STATUS", 0x0800, "1", 0x0800}}},
		// Measurement unavailable and invalid, sensor disconnected (bit 15): the status alone.
		{0x2A5F, "0C E8 F3 84 F3 00 A0 00 80 00", []want{{"MDC_PULS_OXIM_DEV_STATUS", 0x8000, "1", 0x8000}}},
		// A poor signal (bit 4) keeps the values: the alarms decide what to make of them.
		{0x2A5F, "08 E8 F3 84 F3 10 00 00", []want{{"59408-5", 100, "%", 100}, {"8889-8", 90, "/min", 90}, {"MDC_PULS_OXIM_DEV_STATUS", 0x10, "1", 0x10}}},
		{0x2A9D, "0E 01 02 04 03 05 06 07 08 09 0A 0B 0C 0D 0E", []want{
			{"29463-7", 2.565, "kg", 2.565}, {"39156-5", 308.3, "kg/m2", 308.3}, {"8302-2", 3.597, "m", 359.7}}},
		{0x2A9D, "0F 01 02 04 03 05 06 07 08 09 0A 0B 0C 0D 0E", []want{
			{"29463-7", 5.13, "[lb_av]", 5.13 * 0.45359237}, {"39156-5", 308.3, "kg/m2", 308.3}, {"8302-2", 359.7, "[in_i]", 359.7 * 2.54}}},
		{0x2A9D, "00 FF FF", nil}, // measurement unsuccessful
	} {
		v, err := Decode(c.uuid, hexb(t, c.hex))
		if err != nil {
			t.Fatalf("0x%04X %s: %v", c.uuid, c.hex, err)
		}
		rs := v.(Measurement).Readings()
		if len(rs) != len(c.want) {
			t.Errorf("0x%04X %s: readings %+v, want %d", c.uuid, c.hex, rs, len(c.want))
			continue
		}
		for i, w := range c.want {
			r := rs[i]
			code, ok := cat.ByID(r.Code)
			if !ok {
				t.Errorf("0x%04X: code %q not in the catalog", c.uuid, r.Code)
				continue
			}
			if r.Code != w.code || r.Unit != code.Unit {
				t.Errorf("0x%04X: reading %+v, want code %s unit %s", c.uuid, r, w.code, code.Unit)
			}
			byCat, err := cat.Convert(code, w.devValue, w.devUnit)
			if err != nil {
				t.Errorf("0x%04X: catalog cannot convert %v %s: %v", c.uuid, w.devValue, w.devUnit, err)
				continue
			}
			if math.Abs(r.Value-byCat) > 1e-12*math.Max(1, math.Abs(byCat)) {
				t.Errorf("0x%04X %s: value %v, catalog makes %v", c.uuid, r.Code, r.Value, byCat)
			}
			if math.Abs(r.Value-w.canonValue) > 1e-6*math.Max(1, math.Abs(w.canonValue)) {
				t.Errorf("0x%04X %s: value %v, want %v", c.uuid, r.Code, r.Value, w.canonValue)
			}
		}
	}
}
