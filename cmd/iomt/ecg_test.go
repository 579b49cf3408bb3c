package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
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
