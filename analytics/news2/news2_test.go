package news2

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// Every band edge of chart 1, and the value just past it.
func TestBoundaries(t *testing.T) {
	type tc struct {
		v    float64
		want int
	}
	check := func(name string, f func(float64) int, cases []tc) {
		t.Helper()
		for _, c := range cases {
			if got := f(c.v); got != c.want {
				t.Errorf("%s(%v) = %d, want %d", name, c.v, got, c.want)
			}
		}
	}
	check("RespRate", RespRateScore, []tc{{0, 3}, {8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}, {60, 3},
		{8.4, 3}, {8.5, 1}, {20.49, 0}, {20.5, 2}})
	check("SBP", SBPScore, []tc{{50, 3}, {90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}, {300, 3}})
	check("Pulse", PulseScore, []tc{{20, 3}, {40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1}, {111, 2}, {130, 2}, {131, 3}, {250, 3}})
	check("Temp", TempScore, []tc{{30, 3}, {35.0, 3}, {35.1, 1}, {36.0, 1}, {36.1, 0}, {38.0, 0}, {38.1, 1}, {39.0, 1}, {39.1, 2}, {42, 2},
		{35.04, 3}, {35.05, 1}, {37.5, 0}})
	check("SpO2 scale 1", func(x float64) int { return SpO2Score(x, Scale1, false) },
		[]tc{{70, 3}, {91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}, {100, 0}})
	check("SpO2 scale 1 on oxygen", func(x float64) int { return SpO2Score(x, Scale1, true) },
		[]tc{{91, 3}, {92, 2}, {94, 1}, {96, 0}, {100, 0}})
	check("SpO2 scale 2 on air", func(x float64) int { return SpO2Score(x, Scale2, false) },
		[]tc{{70, 3}, {83, 3}, {84, 2}, {85, 2}, {86, 1}, {87, 1}, {88, 0}, {92, 0}, {93, 0}, {97, 0}, {100, 0}})
	check("SpO2 scale 2 on oxygen", func(x float64) int { return SpO2Score(x, Scale2, true) },
		[]tc{{83, 3}, {84, 2}, {85, 2}, {86, 1}, {87, 1}, {88, 0}, {92, 0}, {93, 1}, {94, 1}, {95, 2}, {96, 2}, {97, 3}, {100, 3}})
}

// TestChartTSV checks every row of the transcribed RCP chart at both of its edges.
func TestChartTSV(t *testing.T) {
	p := filepath.Join("../../../shared/data/news2", "rcp_chart1_bands.tsv")
	f, err := os.Open(p)
	if err != nil {
		t.Skipf("chart %s absent (%v): skipping; see ../shared/data/README.md", p, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	rows := 0
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 5 || c[0] == "parameter" {
			continue
		}
		want, _ := strconv.Atoi(c[1])
		var score func(float64) int
		switch c[0] {
		case "respiration_rate_per_min":
			score = RespRateScore
		case "spo2_scale1_pct":
			score = func(x float64) int { return SpO2Score(x, Scale1, false) }
		case "spo2_scale2_pct":
			oxygen := c[4] == "on oxygen"
			score = func(x float64) int { return SpO2Score(x, Scale2, oxygen) }
			if c[4] == "any" {
				// 88–92 scores 0 on air and on oxygen alike.
				score = func(x float64) int { return SpO2Score(x, Scale2, true) + SpO2Score(x, Scale2, false) }
			}
		case "systolic_bp_mmHg":
			score = SBPScore
		case "pulse_per_min":
			score = PulseScore
		case "temperature_C":
			score = TempScore
		case "air_or_oxygen":
			oxygen := c[4] == "oxygen"
			r, err := Score(Vitals{RespRate: 16, SpO2: 97, Oxygen: oxygen, SBP: 120, Pulse: 70, ACVPU: Alert, Temp: 37})
			if err != nil || r.Sub.AirOrOxygen != want {
				t.Errorf("air/oxygen %q: %+v %v, want %d", c[4], r.Sub, err, want)
			}
			rows++
			continue
		case "consciousness":
			for _, a := range []ACVPU{Alert, Confusion, Voice, Pain, Unresponsive} {
				if (a == Alert) != (c[4] == "Alert") {
					continue
				}
				r, err := Score(Vitals{RespRate: 16, SpO2: 97, SBP: 120, Pulse: 70, ACVPU: a, Temp: 37})
				if err != nil || r.Sub.Consciousness != want {
					t.Errorf("consciousness %v: %+v %v, want %d", a, r.Sub, err, want)
				}
			}
			rows++
			continue
		default:
			t.Fatalf("unknown chart parameter %q", c[0])
		}
		step := 1.0
		if c[0] == "temperature_C" {
			step = 0.1
		}
		for _, e := range []string{c[2], c[3]} {
			if e == "" {
				continue
			}
			v, err := strconv.ParseFloat(e, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := score(v); got != want {
				t.Errorf("%s %v: %d, want %d (chart row %q)", c[0], v, got, want, sc.Text())
			}
		}
		// Open-ended rows: a value well beyond the edge scores the same.
		if c[2] == "" {
			v, _ := strconv.ParseFloat(c[3], 64)
			if got := score(v - 5*step); got != want {
				t.Errorf("%s %v: %d, want %d", c[0], v-5*step, got, want)
			}
		}
		if c[3] == "" {
			v, _ := strconv.ParseFloat(c[2], 64)
			if got := score(v + 3*step); got != want {
				t.Errorf("%s %v: %d, want %d", c[0], v+3*step, got, want)
			}
		}
		rows++
	}
	if rows != 37 {
		t.Fatalf("checked %d chart rows, want 37", rows)
	}
}

func TestAggregateAndBands(t *testing.T) {
	base := Vitals{RespRate: 16, SpO2: 97, SBP: 120, Pulse: 70, ACVPU: Alert, Temp: 37}
	for _, tc := range []struct {
		name  string
		mod   func(*Vitals)
		total int
		red   bool
		band  Band
	}{
		{"all normal", func(*Vitals) {}, 0, false, Low},
		{"4 without a red score", func(v *Vitals) { v.RespRate = 22; v.Pulse = 100; v.Temp = 38.5 }, 4, false, Low},
		{"single 3 is low-medium", func(v *Vitals) { v.SBP = 90 }, 3, true, LowMedium},
		{"new confusion alone", func(v *Vitals) { v.ACVPU = Confusion }, 3, true, LowMedium},
		{"3 plus 1 stays low-medium", func(v *Vitals) { v.ACVPU = Voice; v.Temp = 35.5 }, 4, true, LowMedium},
		{"5 is medium", func(v *Vitals) { v.RespRate = 22; v.SpO2 = 93; v.Pulse = 95 }, 5, false, Medium},
		{"6 with a red score is medium", func(v *Vitals) { v.SBP = 85; v.RespRate = 22; v.Pulse = 95 }, 6, true, Medium},
		{"7 is high", func(v *Vitals) { v.SBP = 85; v.RespRate = 22; v.Pulse = 115 }, 7, true, High},
		{"oxygen scores 2", func(v *Vitals) { v.Oxygen = true }, 2, false, Low},
		{"maximum", func(v *Vitals) {
			v.RespRate, v.SpO2, v.Oxygen, v.SBP, v.Pulse, v.ACVPU, v.Temp = 5, 80, true, 80, 150, Unresponsive, 34
		}, 20, true, High},
		// The third-party worked example in ../shared/data/news2 claims 6; chart 1 gives 5.
		{"SynaneticsLtd example scores 5, not 6", func(v *Vitals) {
			v.RespRate, v.Pulse, v.SpO2, v.Temp, v.SBP = 21, 95, 93, 37.5, 120
		}, 5, false, Medium},
	} {
		v := base
		tc.mod(&v)
		r, err := Score(v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Total != tc.total || r.RedScore != tc.red || r.Band != tc.band {
			t.Errorf("%s: %+v, want total %d red %v band %v", tc.name, r, tc.total, tc.red, tc.band)
		}
	}
}

func TestRefusals(t *testing.T) {
	base := Vitals{RespRate: 16, SpO2: 97, SBP: 120, Pulse: 70, ACVPU: Alert, Temp: 37}
	for _, tc := range []struct {
		mod    func(*Vitals)
		reason string
	}{
		{func(v *Vitals) { v.RespRate = -1 }, "respiration rate -1 outside"},
		{func(v *Vitals) { v.SpO2 = 101 }, "SpO2 101 outside"},
		{func(v *Vitals) { v.Temp = 3 }, "temperature 3 outside"},
		{func(v *Vitals) { v.Pulse = nan() }, "pulse NaN outside"},
		{func(v *Vitals) { v.Scale = 3 }, "SpO2 scale must be 1 or 2"},
		{func(v *Vitals) { v.ACVPU = 0 }, "is not one of A, C, V, P, U"},
	} {
		v := base
		tc.mod(&v)
		_, err := Score(v)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("got %v, want ErrInvalid saying %q", err, tc.reason)
		}
	}
	if _, err := ParseACVPU("x"); err == nil || !strings.Contains(err.Error(), `got "x"`) {
		t.Errorf("ParseACVPU(x): %v", err)
	}
	for s, want := range map[string]ACVPU{"A": Alert, "c": Confusion, "V": Voice, "p": Pain, "U": Unresponsive} {
		if got, err := ParseACVPU(s); err != nil || got != want {
			t.Errorf("ParseACVPU(%q) = %v, %v", s, got, err)
		}
	}
}

func nan() float64 { v := 0.0; return v / v }

func TestCodesMatchCatalog(t *testing.T) {
	c := codes.New()
	for alias, want := range map[string]string{"rr": CodeRespRate, "spo2": CodeSpO2, "sbp": CodeSBP, "hr": CodePulse, "temp": CodeTemp, "pulse": CodePulseOx, "sao2": CodeSaO2} {
		code, ok := c.Lookup(alias)
		if !ok || code.ID != want {
			t.Errorf("catalog %q = %+v, want %s", alias, code, want)
		}
	}
}

func TestAssess(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	obs := func(code string, v float64, ago time.Duration) iomt.Observation {
		return iomt.Observation{Patient: "p1", Code: code, Value: v, Time: now.Add(-ago)}
	}
	full := []iomt.Observation{
		obs(CodeRespRate, 30, 20*time.Minute), obs(CodeRespRate, 22, time.Minute), // latest wins
		obs(CodeSpO2, 95, time.Minute), obs(CodeSBP, 105, 30*time.Minute), obs(CodePulse, 115, time.Minute),
		obs(CodeTemp, 38.4, 3*time.Hour), obs(CodePulse, 200, -time.Minute), // future reading ignored
	}
	in := Inputs{Observations: full, ACVPU: Alert, ACVPUTime: now.Add(-10 * time.Minute), OxygenTime: now.Add(-10 * time.Minute)}
	a, err := Assess(now, in, DefaultFreshness())
	if err != nil {
		t.Fatal(err)
	}
	// RR 22 → 2, SpO2 95 → 1, air 0, SBP 105 → 1, pulse 115 → 2, A 0, 38.4 → 1.
	if !a.Complete || a.Result == nil || a.Result.Total != 7 || a.Result.Band != High || a.Used[ParamRespRate].Value != 22 {
		t.Fatalf("complete set: %+v %+v", a, a.Result)
	}

	// Missing temperature and consciousness, stale SBP: no score, and each reported.
	in2 := Inputs{Observations: []iomt.Observation{
		obs(CodeRespRate, 18, time.Minute), obs(CodeSaO2, 97, time.Minute), obs(CodeSBP, 85, 2*time.Hour), obs(CodePulseOx, 60, time.Minute),
	}, OxygenTime: now}
	a, err = Assess(now, in2, DefaultFreshness())
	if err != nil {
		t.Fatal(err)
	}
	if a.Complete || a.Result != nil {
		t.Fatalf("incomplete set scored: %+v", a.Result)
	}
	if fmt.Sprint(a.Missing) != "[consciousness temp]" || a.Stale[ParamSBP] == "" || len(a.Stale) != 1 {
		t.Fatalf("missing %v stale %v", a.Missing, a.Stale)
	}
	if a.Partial != 0 {
		t.Fatalf("partial %d: a stale SBP of 85 must not be counted", a.Partial)
	}

	// Scale 2 on oxygen without a recorded oxygen status cannot score SpO2 either.
	in3 := in
	in3.Scale, in3.OxygenTime = Scale2, time.Time{}
	a, _ = Assess(now, in3, DefaultFreshness())
	if a.Complete || fmt.Sprint(a.Missing) != "[airOrOxygen]" {
		t.Fatalf("scale 2 without oxygen status: %+v", a)
	}
}
