package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func gattRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = gattCommand(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestGattDecode(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // a fragment of the JSON
	}{
		{[]string{"decode", "2A37", "1E 55 32 00 21 00"}, `"heart_rate": 85`},
		{[]string{"decode", "0x2a37", "1E5532002100"}, `"rr_intervals": [`},
		{[]string{"decode", "00002A37-0000-1000-8000-00805F9B34FB", "1E", "55", "32", "00", "21", "00"}, `"energy_expended": 50`},
		{[]string{"decode", "2A1C", "06:B0:0E:00:FE:DC:07:0C:05:0B:32:1B:04"}, `"temperature": 37.60`},
		{[]string{"decode", "2AA7", "0F-E3-D2-E4-05-00-02-14-FF-02-F0-E5-F3-8E-3F"}, `"secured": true`},
		{[]string{"decode", "2A35", "0x00 BD F0 0B 00 9F F0"}, `"unit": "mm[Hg]"`},
		{[]string{"decode", "2A60", "A3 00 40 10 80 01 00"}, `"multiple_bonds": true`},
	} {
		code, out, errs := gattRun(c.args...)
		if code != 0 || errs != "" {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errs)
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("%v: output lacks %s:\n%s", c.args, c.want, out)
		}
		var doc struct {
			UUID           string `json:"uuid"`
			Characteristic string `json:"characteristic"`
			Value          map[string]any
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Characteristic == "" || doc.Value == nil || !strings.HasPrefix(doc.UUID, "0x") {
			t.Errorf("%v: output %q: %v", c.args, out, err)
		}
		if !strings.Contains(out, "\n  \"") {
			t.Errorf("%v: output not indented", c.args)
		}
	}
}

func TestGattDecodeReadings(t *testing.T) {
	code, out, _ := gattRun("decode", "2A35", "15 BD F0 0B 00 9F F0 3C 00 12 00")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Readings []struct {
			Code  string  `json:"code"`
			Value float64 `json:"value"`
			Unit  string  `json:"unit"`
		} `json:"readings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Readings) != 4 || doc.Readings[0].Code != "8480-6" || doc.Readings[0].Unit != "mm[Hg]" || doc.Readings[0].Value < 141.7 || doc.Readings[0].Value > 141.8 {
		t.Fatalf("readings %+v", doc.Readings)
	}
}

// A refused payload exits 1 with the decoder's reason on stderr.
func TestGattDecodeRefused(t *testing.T) {
	for _, c := range []struct {
		uuid, hex, reason string
	}{
		{"2A37", "01 48", "gatt: 0x2A37: offset 1: heart rate (uint16) needs 2 bytes, 1 left"},
		{"2AA7", "08 00 0C 10 06 00 58 6F", "gatt: 0x2AA7: offset 6: E2E-CRC (uint16) 0x6F58 does not match 0x6F59"},
		{"2A35", "03 02 03 04 05 06 07", "gatt: 0x2A35: offset 7: timestamp (date time) needs 7 bytes, 0 left"},
	} {
		code, out, errs := gattRun("decode", c.uuid, c.hex)
		if code != 1 || out != "" || !strings.Contains(errs, c.reason) {
			t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want 1 and %q", c.uuid, c.hex, code, out, errs, c.reason)
		}
	}
}

func TestGattUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "Usage: iomt gatt decode"},
		{[]string{"encode"}, 2, `unknown subcommand "encode"`},
		{[]string{"decode"}, 2, "want UUID and HEX"},
		{[]string{"decode", "2A37"}, 2, "want UUID and HEX"},
		{[]string{"decode", "2A3X", "00 55"}, 2, `UUID "2A3X"`},
		{[]string{"decode", "12345678-0000-1000-8000-00805F9B34FB", "00 55"}, 2, "not a 16-bit UUID"},
		{[]string{"decode", "2A19", "64"}, 2, "no decoder for characteristic 0x2A19"},
		{[]string{"decode", "2A37", "0 55"}, 2, "HEX"},
		{[]string{"decode", "2A37", "zz"}, 2, "HEX"},
		{[]string{"decode", "2A37", " "}, 2, "empty payload"},
		{[]string{"help"}, 0, ""},
		{[]string{"decode", "-h"}, 0, ""},
	} {
		code, out, errs := gattRun(c.args...)
		if code != c.code || !strings.Contains(errs, c.stderr) {
			t.Errorf("%v: exit %d stderr %q; want %d and %q", c.args, code, errs, c.code, c.stderr)
		}
		if code == 0 && !strings.Contains(out, "Usage: iomt gatt decode") {
			t.Errorf("%v: help not on stdout", c.args)
		}
	}
}
