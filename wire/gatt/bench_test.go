package gatt

import "testing"

// BenchmarkDecode measures the dispatcher on each characteristic's fullest vector.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		uuid uint16
		hex  string
	}{
		{"HeartRate", 0x2A37, "1F 01 01 32 01 01 00 02 01 FF FF"},
		{"BloodPressure", 0x2A35, "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00"},
		{"Temperature", 0x2A1C, "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04"},
		{"Glucose", 0x2A18, "1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01"},
		{"CGM", 0x2AA7, "0F E3 D2 E4 05 00 02 14 FF 02 F0 E5 F3 8E 3F"},
		{"PLXSpotCheck", 0x2A5E, "0F AC F3 BE F5 E8 07 0B 1D 17 08 39 20 40 22 00 00 66 E3"},
		{"PLXContinuous", 0x2A5F, "1F DE F3 CA F3 CA F3 5A F5 D4 F3 B2 F2 20 01 00 00 00 7A E3"},
		{"Weight", 0x2A9D, "0E 01 02 04 03 05 06 07 08 09 0A 0B 0C 0D 0E"},
	} {
		p := hexb(b, c.hex)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(c.uuid, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
