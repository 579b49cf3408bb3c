package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomt/iomt/config"
)

func newSet() (*flag.FlagSet, *string, *string, *int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String(config.FileFlag, "", "config file")
	a := fs.String("http-addr", ":8080", "")
	d := fs.String("data-dir", "data", "")
	n := fs.Int("max-records", 10, "")
	return fs, a, d, n
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "iomt.yaml")
	if err := os.WriteFile(file, []byte("http-addr: ':1'\ndata-dir: /from/file\nmax-records: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"IOMT_DATA_DIR": "/from/env", "IOMT_CONFIG": file}
	fs, a, d, n := newSet()
	if err := config.Parse(fs, []string{"-http-addr", ":2"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *a != ":2" || *d != "/from/env" || *n != 7 {
		t.Fatalf("flag > env > file broken: http-addr=%q data-dir=%q max-records=%d", *a, *d, *n)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("htp-addr: x\n"), 0o600)
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"IOMT_MAX_RECORDS": "many"}, `environment variable IOMT_MAX_RECORDS: invalid value "many" for max-records`},
		{map[string]string{"IOMT_CONFIG": bad}, `unknown setting "htp-addr"`},
		{map[string]string{"IOMT_CONFIG": filepath.Join(dir, "missing.yaml")}, "no such file"},
	}
	for _, c := range cases {
		fs, _, _, _ := newSet()
		err := config.Parse(fs, nil, func(k string) string { return c.env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: got %v, want %q", c.env, err, c.want)
		}
	}
}
