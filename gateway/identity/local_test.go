package identity_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomt/iomt/gateway/identity"
)

const localMapping = `devices:
  - device: kitchen-thermometer
    local: ["urn:dev:mac:0024befffe804ff1", "thermo-1"]
  - device: ward-oximeter-7
    ble: ["C4:7C:8D:6A:12:34"]
    local: [oxi-7]
`

func TestResolveLocal(t *testing.T) {
	tab, err := identity.Parse([]byte(localMapping))
	if err != nil {
		t.Fatal(err)
	}
	var r identity.LocalResolver = tab
	ctx := context.Background()
	for name, want := range map[string]string{
		"urn:dev:mac:0024befffe804ff1": "kitchen-thermometer",
		"URN:DEV:MAC:0024BEFFFE804FF1": "kitchen-thermometer", // names compare without case
		"thermo-1":                     "kitchen-thermometer",
		"oxi-7":                        "ward-oximeter-7",
	} {
		b, err := r.ResolveLocal(ctx, name)
		if err != nil || b.Device != want || !strings.Contains(b.Via, "local name") {
			t.Errorf("%s: %+v, %v; want %s", name, b, err, want)
		}
	}
	_, err = r.ResolveLocal(ctx, "thermo-2")
	if !errors.Is(err, identity.ErrUnknown) || !strings.Contains(err.Error(), `local device name "thermo-2"`) {
		t.Errorf("unknown name: %v", err)
	}
	for _, bad := range []string{"", "a b", "/x", "x?y", strings.Repeat("a", 129)} {
		if _, err := r.ResolveLocal(ctx, bad); !errors.Is(err, identity.ErrBadValue) || errors.Is(err, identity.ErrUnknown) {
			t.Errorf("%q: err = %v, want ErrBadValue", bad, err)
		}
	}
}

func TestLocalParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		err        error
		text       string
	}{
		{"bad name", "devices:\n  - device: a\n    local: [\"a b\"]\n", identity.ErrBadValue, `devices[0].local[0]: "a b" is not a local device name`},
		{"not a list", "devices:\n  - device: a\n    local: x\n", identity.ErrBadValue, "local must be a list"},
		{"duplicate, other case", "devices:\n  - device: a\n    local: [Thermo]\n  - device: b\n    local: [thermo]\n", identity.ErrDuplicate, `local name "thermo" is already mapped at line 3`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := identity.Parse([]byte(c.yaml))
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("err = %v, want %v saying %q", err, c.err, c.text)
			}
		})
	}
}

func TestFileResolveLocal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.yaml")
	if err := os.WriteFile(path, []byte(localMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := identity.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := f.ResolveLocal(context.Background(), "oxi-7"); err != nil || b.Device != "ward-oximeter-7" {
		t.Errorf("%+v, %v", b, err)
	}
}
