package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/iomt/iomt/analytics/ecg"
	"github.com/iomt/iomt/wire/wfdb"
)

const mitdbDir = "../../../shared/data/mitdb"

func needMITDB(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(mitdbDir); err != nil {
		t.Skipf("MIT-BIH data %s absent (%v): skipping; see ../shared/data/README.md", mitdbDir, err)
	}
}

func TestECGUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		reason string
	}{
		{nil, 2, "Usage: iomt ecg eval"},
		{[]string{"frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"eval"}, 2, "--db is required"},
		{[]string{"eval", "--db", "x", "extra"}, 2, "no positional arguments"},
		{[]string{"eval", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"eval", "--db", t.TempDir()}, 1, "no .hea file"},
		{[]string{"eval", "--db", t.TempDir(), "--records", "nosuch"}, 1, "nosuch.hea"},
		{[]string{"eval", "--db", "x", "--records", " , "}, 1, "--records names no record"},
	} {
		var out, errb bytes.Buffer
		code := ecgCommand(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.reason) {
			t.Errorf("ecg %q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.reason)
		}
	}
}

func TestECGEvalMITDB(t *testing.T) {
	needMITDB(t)
	records := os.Getenv("IOMT_ECG_RECORDS")
	if records == "" {
		records = "100,105,201,232"
	}
	args := []string{"eval", "--db", mitdbDir, "--records", records}
	if records == "all" {
		args = args[:3]
	}
	var out, errb bytes.Buffer
	if code := ecgCommand(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	t.Log("\n" + out.String())
	out.Reset()
	if code := ecgCommand(context.Background(), []string{"eval", "--db", mitdbDir, "--records", "100", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep evalReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 1 || rep.Records[0].Beats != 2273 || rep.Se < 0.99 || rep.PPV < 0.99 {
		t.Fatalf("record 100: %+v", rep.Records)
	}
	// Record 100 has no AF: no AF figures rather than a ratio of nothing.
	if rep.AFSe != nil || rep.AFPPV != nil || strings.Contains(out.String(), `"afSe"`) {
		t.Errorf("AF figures without AF in the reference: %s", out.String())
	}
}

func TestReferenceEpisodes(t *testing.T) {
	rh := func(at int64, aux string) wfdb.Annotation {
		return wfdb.Annotation{Sample: at, Code: wfdb.Rhythm, Aux: aux}
	}
	beat := func(at int64) wfdb.Annotation { return wfdb.Annotation{Sample: at, Code: wfdb.Normal} }
	anns := []wfdb.Annotation{
		rh(0, "(N"), beat(10), rh(100, "(AFIB"), beat(150), rh(300, "(AFL"), beat(350),
		rh(400, "(AFIB"), rh(500, "(N"), rh(600, "(AFL"),
	}
	beats, af, afl := referenceEpisodes(anns, 0.5, 1000)
	if want := []int64{5, 75, 175}; !slices.Equal(beats, want) {
		t.Errorf("beats %v, want %v", beats, want)
	}
	if want := []ecg.Interval{{Start: 50, End: 150}, {Start: 200, End: 250}}; !slices.Equal(af, want) {
		t.Errorf("AF %v, want %v", af, want)
	}
	// The last episode runs to the record's end.
	if want := []ecg.Interval{{Start: 150, End: 200}, {Start: 300, End: 1000}}; !slices.Equal(afl, want) {
		t.Errorf("AFL %v, want %v", afl, want)
	}
}

// Record 203 holds the database's longest atrial flutter; AF called during it is excluded from
// the positive predictivity as EC57's epicmp does, and reported beside it.
func TestECGEvalFlutterExcluded(t *testing.T) {
	needMITDB(t)
	var out, errb bytes.Buffer
	if code := ecgCommand(context.Background(), []string{"eval", "--db", mitdbDir, "--records", "203", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep evalReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	r := rep.Records[0]
	if r.AFInAFL <= 0 || r.AFInAFL > r.AFDet-r.AFBoth+0.01 {
		t.Fatalf("AF in flutter %.1f s of %.1f s detected, %.1f s of it true AF", r.AFInAFL, r.AFDet, r.AFBoth)
	}
	if rep.AFPPV == nil || rep.AFPPVWithFlutter == nil {
		t.Fatalf("no AF figures: %s", out.String())
	}
	if got, want := *rep.AFPPV, r.AFBoth/(r.AFDet-r.AFInAFL); math.Abs(got-want) > 1e-9 {
		t.Errorf("AF PPV %v, want %v", got, want)
	}
	if got, want := *rep.AFPPVWithFlutter, r.AFBoth/r.AFDet; math.Abs(got-want) > 1e-9 || got >= *rep.AFPPV {
		t.Errorf("AF PPV with flutter %v, want %v (below %v)", got, want, *rep.AFPPV)
	}
}

func TestStressNoise(t *testing.T) {
	const fs, rms = 360.0, 0.2
	for _, kind := range noiseKinds {
		x := make([]float64, int(fs)*600)
		addNoise(x, fs, rms, kind, rand.New(rand.NewPCG(1, 2)))
		var s, s2, c float64
		for _, v := range x {
			if v != 0 {
				s, s2, c = s+v, s2+v*v, c+1
			}
		}
		mean := s / c
		got := math.Sqrt(s2/c - mean*mean)
		if math.Abs(got-rms) > 0.01*rms {
			t.Errorf("%s: RMS %.4f mV where present, want %v", kind, got, rms)
		}
		share := c / float64(len(x))
		bursty := kind == "muscle" || kind == "motion"
		if bursty != (share < 0.6) || share < 0.1 {
			t.Errorf("%s: present in %.0f %% of the samples", kind, 100*share)
		}
		y := make([]float64, len(x))
		addNoise(y, fs, rms, kind, rand.New(rand.NewPCG(1, 2)))
		if !slices.Equal(x, y) {
			t.Errorf("%s: not reproducible from its seed", kind)
		}
	}
	var out, errb bytes.Buffer
	if code := ecgCommand(context.Background(), []string{"eval", "--db", "x", "--noise", "0.1", "--noise-kind", "hum"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `--noise-kind must be one of white, mains, baseline, muscle, motion, got "hum"`) {
		t.Errorf("unknown noise kind: exit %d, %q", code, errb.String())
	}
}

// The figures docs/VALIDATION.md reports and the issue asks for, over all 48 records: QRS
// gross Se and +P ≥ 99.7 %, AF duration Se and PPV (EC57) ≥ 95 %. Deterministic, so a change
// to the detector that loses them fails here rather than in the documentation. (Speed is
// measured by the command and benchmarks, never asserted.)
func TestECGAcceptanceMITDB(t *testing.T) {
	needMITDB(t)
	var out, errb bytes.Buffer
	if code := ecgCommand(context.Background(), []string{"eval", "--db", mitdbDir, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep evalReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != 48 || rep.AFSe == nil || rep.AFPPV == nil {
		t.Fatalf("%d records, AF %v %v", len(rep.Records), rep.AFSe, rep.AFPPV)
	}
	t.Logf("QRS Se %.3f %%, +P %.3f %%; AF Se %.2f %%, PPV %.2f %%", 100*rep.Se, 100*rep.PPV, 100**rep.AFSe, 100**rep.AFPPV)
	if rep.Se < 0.997 || rep.PPV < 0.997 {
		t.Errorf("QRS gross Se %.3f %%, +P %.3f %%, want ≥ 99.7 %%", 100*rep.Se, 100*rep.PPV)
	}
	if *rep.AFSe < 0.95 || *rep.AFPPV < 0.95 {
		t.Errorf("AF duration Se %.2f %%, PPV %.2f %%, want ≥ 95 %%", 100**rep.AFSe, 100**rep.AFPPV)
	}
}
