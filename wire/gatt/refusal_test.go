package gatt

import (
	"errors"
	"testing"

	"github.com/iomt/iomt"
)

// Every kind of refusal, with the reason it must give.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		uuid uint16
		hex  string
		want string
	}{
		{0x2A37, "", "gatt: 0x2A37: offset 0: flags (uint8) needs 1 byte, 0 left"},
		{0x2A37, "01 48", "gatt: 0x2A37: offset 1: heart rate (uint16) needs 2 bytes, 1 left"},
		{0x2A37, "08 48 01", "gatt: 0x2A37: offset 2: energy expended (uint16) needs 2 bytes, 1 left"},
		{0x2A37, "10 48 00 04 01", "gatt: 0x2A37: offset 4: RR interval (uint16) needs 2 bytes, 1 left"},
		{0x2A37, "00 48 00", "gatt: 0x2A37: offset 2: end of payload expected, 1 trailing bytes after the last announced field"},
		{0x2A35, "00 01 08 58 00 78 00", "gatt: 0x2A35: offset 1: systolic (SFLOAT) is the reserved value 0x0801"},
		{0x2A35, "10 8A 00 58 00 78 00 18 00", "gatt: 0x2A35: offset 7: measurement status pulse rate range (bits 3-4) is the reserved value 3"},
		{0x2A35, "02 8A 00 58 00 78 00 E4 07 0D 01 00 00 00", "gatt: 0x2A35: offset 9: timestamp month 13 is out of range 0..12"},
		{0x2A35, "02 8A 00 58 00 78 00 E4 07 01 20 00 00 00", "gatt: 0x2A35: offset 10: timestamp day 32 is out of range 0..31"},
		{0x2A35, "02 8A 00 58 00 78 00 E4 07 01 01 18 00 00", "gatt: 0x2A35: offset 11: timestamp hours 24 is out of range 0..23"},
		{0x2A35, "02 8A 00 58 00 78 00 E4 07 01 01 00 3C 00", "gatt: 0x2A35: offset 12: timestamp minutes 60 is out of range 0..59"},
		{0x2A35, "02 8A 00 58 00 78 00 E4 07 01 01 00 00 3C", "gatt: 0x2A35: offset 13: timestamp seconds 60 is out of range 0..59"},
		{0x2A1C, "04 B0 0E 00 FE 00", "gatt: 0x2A1C: offset 5: temperature type (uint8) 0 is reserved (valid 1..9)"},
		{0x2A1C, "04 B0 0E 00 FE 0A", "gatt: 0x2A1C: offset 5: temperature type (uint8) 10 is reserved (valid 1..9)"},
		{0x2A1C, "00 01 00 80 00", "gatt: 0x2A1C: offset 1: temperature (FLOAT) is the reserved value 0x00800001"},
		{0x2A1C, "00 B0 0E 00", "gatt: 0x2A1C: offset 1: temperature (FLOAT) needs 4 bytes, 3 left"},
		{0x2A18, "02 01 00 E3 07 02 1B 0B 0A 1E 1E 00 10", "gatt: 0x2A18: offset 12: type (low nibble) 0 is reserved (valid 1..10)"},
		{0x2A18, "02 01 00 E3 07 02 1B 0B 0A 1E 1E 00 51", "gatt: 0x2A18: offset 12: sample location (high nibble) 5 is reserved (valid 1..4, 15)"},
		{0x2A18, "00 01 00 E3 07 02 1B 0B 0A", "gatt: 0x2A18: offset 3: base time (date time) needs 7 bytes, 6 left"},
		{0x2AA7, "", "gatt: 0x2AA7: offset 0: size (uint8) needs 1 byte, 0 left"},
		{0x2AA7, "00", "gatt: 0x2AA7: offset 0: size (uint8) 0 is less than the 6 bytes every record has"},
		{0x2AA7, "06 00 0C 10 06 00 07 00 0C 10 06 00 00", "gatt: 0x2AA7: offset 12: end of record expected, 1 bytes left before the size 7 is reached (an E2E-CRC is 2)"},
		{0x2AA7, "06 00 0C 10 06 00 06", "gatt: 0x2AA7: offset 6: size (uint8) 6 but 1 bytes left in the payload"},
		{0x2AA7, "0A 00 0C 10 06 00 00 00 00 00", "gatt: 0x2AA7: offset 6: end of record expected, 4 bytes left before the size 10 is reached (an E2E-CRC is 2)"},
		{0x2AA7, "08 00 01 08 06 00 00 00", "gatt: 0x2AA7: offset 2: glucose concentration (SFLOAT) is the reserved value 0x0801"},
		{0x2A5E, "00 AC F3 BE", "gatt: 0x2A5E: offset 3: pulse rate (SFLOAT) needs 2 bytes, 1 left"},
		{0x2A5E, "04 AC F3 BE F5 22 00", "gatt: 0x2A5E: offset 5: device and sensor status (uint24) needs 3 bytes, 2 left"},
		{0x2A5F, "01 E8 F3 84 F3 E8 F3", "gatt: 0x2A5F: offset 7: pulse rate fast (SFLOAT) needs 2 bytes, 0 left"},
		{0x2A5F, "00 E8 F3 84 F3 00", "gatt: 0x2A5F: offset 5: end of payload expected, 1 trailing bytes after the last announced field"},
		{0x2A60, "01 00 40", "gatt: 0x2A60: offset 2: measurement status support (uint16) needs 2 bytes, 1 left"},
		{0x2A9D, "08 00 00 FF FF", "gatt: 0x2A9D: offset 5: height (uint16) needs 2 bytes, 0 left"},
		{0x2A9D, "00 00", "gatt: 0x2A9D: offset 1: weight (uint16) needs 2 bytes, 1 left"},
	} {
		v, err := Decode(c.uuid, hexb(t, c.hex))
		if err == nil {
			t.Errorf("0x%04X %s: decoded %+v, want refusal %q", c.uuid, c.hex, v, c.want)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("0x%04X %s:\n got %v\nwant %s", c.uuid, c.hex, err, c.want)
		}
		checkRefusal(t, c.uuid, err)
	}
}

func TestDecodeUnknown(t *testing.T) {
	_, err := Decode(0x2A19, []byte{100})
	if !errors.Is(err, ErrUnknownCharacteristic) || !errors.Is(err, iomt.ErrInvalid) {
		t.Fatalf("err = %v, want ErrUnknownCharacteristic", err)
	}
	if err.Error() != "gatt: 0x2A19: unknown characteristic" {
		t.Fatalf("err = %q", err)
	}
}

func TestParseUUID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"2A37", 0x2A37, true},
		{"2a37", 0x2A37, true},
		{"0x2A37", 0x2A37, true},
		{"0X2a37", 0x2A37, true},
		{" 2AA7 ", 0x2AA7, true},
		{"00002A37-0000-1000-8000-00805F9B34FB", 0x2A37, true},
		{"00002a9d-0000-1000-8000-00805f9b34fb", 0x2A9D, true},
		{"12342A37-0000-1000-8000-00805F9B34FB", 0, false},
		{"00002A37-0000-1000-8000-00805F9B34FC", 0, false},
		{"2A37F", 0, false},
		{"0x", 0, false},
		{"", 0, false},
		{"zz37", 0, false},
		{"-2A3", 0, false},
	} {
		got, err := ParseUUID(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseUUID(%q) = %#04x, %v; want %#04x ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, iomt.ErrInvalid) {
			t.Errorf("ParseUUID(%q): %v does not match iomt.ErrInvalid", c.in, err)
		}
	}
}

// The RFU bits of flags are ignored, as the specifications tell receivers.
func TestReservedFlagBitsIgnored(t *testing.T) {
	m, err := DecodeHeartRate(hexb(t, "E0 48"))
	if err != nil || m.HeartRate != 72 {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestDateTimeTime(t *testing.T) {
	for _, c := range []struct {
		d  DateTime
		ok bool
	}{
		{DateTime{Year: 2024, Month: 2, Day: 29, Hours: 23, Minutes: 59, Seconds: 59}, true},
		{DateTime{Year: 2023, Month: 2, Day: 29}, false},
		{DateTime{Year: 0, Month: 4, Day: 17}, false},
		{DateTime{Year: 772, Month: 5, Day: 6}, false},
		{DateTime{Year: 2024, Month: 0, Day: 6}, false},
	} {
		if _, ok := c.d.Time(nil); ok != c.ok {
			t.Errorf("%v.Time ok = %v, want %v", c.d, ok, c.ok)
		}
	}
	if s := (DateTime{Year: 772, Month: 5, Day: 6, Hours: 7, Minutes: 8, Seconds: 9}).String(); s != "0772-05-06T07:08:09" {
		t.Errorf("String = %q", s)
	}
}
