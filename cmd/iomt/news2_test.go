package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestNEWS2Command(t *testing.T) {
	args := []string{"--rr", "21", "--spo2", "93", "--sbp", "120", "--hr", "95", "--acvpu", "A", "--temp", "37.5"}
	var out, errb bytes.Buffer
	if code := news2Command(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"respiration rate      21 /min    2", "SpO2 (scale 1)        93 %       2", "pulse                 95 /min    1",
		"temperature         37.5 °C      0", "NEWS2 5: medium risk"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	args = []string{"--rr", "8", "--spo2", "97", "--scale", "2", "--oxygen", "--sbp", "221", "--hr", "131", "--acvpu", "c", "--temp", "35", "--json"}
	if code := news2Command(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r struct {
		SubScores map[string]int `json:"subScores"`
		Total     int            `json:"total"`
		RedScore  bool           `json:"redScore"`
		Band      string         `json:"band"`
		Response  string         `json:"response"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Total != 20 || r.Band != "high" || !r.RedScore || r.SubScores["spo2"] != 3 || r.SubScores["airOrOxygen"] != 2 || r.Response == "" {
		t.Fatalf("json: %+v", r)
	}
}

func TestNEWS2Refusals(t *testing.T) {
	full := []string{"--rr", "16", "--spo2", "97", "--sbp", "120", "--hr", "70", "--acvpu", "A", "--temp", "37"}
	for _, tc := range []struct {
		args   []string
		reason string
	}{
		{nil, "missing --rr, --spo2, --sbp, --hr, --acvpu, --temp"},
		{full[2:], "missing --rr"},
		{append(full[:8:8], "--acvpu", "X", "--temp", "37"), `consciousness must be one of A, C, V, P, U, got "X"`},
		{append(append([]string{}, full...), "--scale", "3"), "SpO2 scale must be 1 or 2"},
		{append(append([]string{}, full...), "--spo2", "120"), "SpO2 120 outside"},
		{append(append([]string{}, full...), "extra"), `unexpected argument "extra"`},
		{[]string{"--rr", "x"}, `invalid value "x" for flag -rr`},
	} {
		var out, errb bytes.Buffer
		code := news2Command(context.Background(), tc.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.reason) {
			t.Errorf("news2 %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.reason)
		}
	}
}
