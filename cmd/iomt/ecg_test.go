package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
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
	if got, want := rep.AFPPV, r.AFBoth/(r.AFDet-r.AFInAFL); math.Abs(got-want) > 1e-9 {
		t.Errorf("AF PPV %v, want %v", got, want)
	}
	if got, want := rep.AFPPVWithFlutter, r.AFBoth/r.AFDet; math.Abs(got-want) > 1e-9 || got >= rep.AFPPV {
		t.Errorf("AF PPV with flutter %v, want %v (below %v)", got, want, rep.AFPPV)
	}
}
