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

const good = `devices:
  - device: icu3-bed01-monitor
    kind: bedside-monitor
    equipment: ["0123456789abcdef"]
    senders:
      - {application: "080019FFFF4F6AC0", facility: MMS}
  - device: ward-oximeter-7
    ble: ["c4-7c-8d-6a-12-34"]
  - device: central-bed02
    patients:
      - {id: AB60001, authority: A}
      - {id: "0042"}
  - device: acme-gateway
    senders:
      - {application: AcmeInc}
`

func TestResolve(t *testing.T) {
	tab, err := identity.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := tab.ResolveBLE(ctx, "C4:7C:8D:6A:12:34")
	if err != nil || b.Device != "ward-oximeter-7" {
		t.Errorf("BLE: %+v, %v", b, err)
	}
	cases := []struct {
		name string
		s    identity.HL7Sender
		want string
	}{
		{"equipment, any case", identity.HL7Sender{Equipment: []string{"0123456789ABCDEF"}, Application: identity.HD{Namespace: "AcmeInc"}}, "icu3-bed01-monitor"},
		{"sender universal id and facility", identity.HL7Sender{Application: identity.HD{Namespace: "HL7", UniversalID: "080019FFFF4F6AC0"}, Facility: identity.HD{Namespace: "MMS"}}, "icu3-bed01-monitor"},
		{"patient before sender", identity.HL7Sender{Application: identity.HD{Namespace: "AcmeInc"}, Patients: []identity.PatientID{{ID: "AB60001", Authority: "A"}}}, "central-bed02"},
		{"patient without authority in the table", identity.HL7Sender{Patients: []identity.PatientID{{ID: "0042", Authority: "Somewhere"}}}, "central-bed02"},
		{"sender namespace, any facility", identity.HL7Sender{Application: identity.HD{Namespace: "acmeinc"}, Facility: identity.HD{Namespace: "X"}}, "acme-gateway"},
	}
	for _, c := range cases {
		b, err := tab.ResolveHL7(ctx, c.s)
		if err != nil || b.Device != c.want {
			t.Errorf("%s: got %+v, %v; want %s", c.name, b, err, c.want)
		}
	}
	if b, _ := tab.ResolveHL7(ctx, cases[0].s); b.Kind != "bedside-monitor" || !strings.Contains(b.Via, "equipment") {
		t.Errorf("binding %+v lacks kind or via", b)
	}
}

func TestUnknown(t *testing.T) {
	tab, err := identity.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = tab.ResolveHL7(ctx, identity.HL7Sender{Equipment: []string{"FFFF"}, Application: identity.HD{Namespace: "Other"},
		Patients: []identity.PatientID{{ID: "AB60001", Authority: "B"}}})
	if !errors.Is(err, identity.ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
	for _, want := range []string{`equipment "FFFF"`, `patient "AB60001" (authority "B")`, `sender "Other"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	if _, err := tab.ResolveBLE(ctx, "00:11:22:33:44:55"); !errors.Is(err, identity.ErrUnknown) || !strings.Contains(err.Error(), "00:11:22:33:44:55") {
		t.Errorf("BLE unknown: %v", err)
	}
	if _, err := tab.ResolveBLE(ctx, "not-an-address"); !errors.Is(err, identity.ErrBadValue) {
		t.Errorf("BLE malformed: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		err        error
		line       int
		text       string // must appear in the message
	}{
		{"syntax", "devices: [", identity.ErrSyntax, 0, "YAML"},
		{"not a mapping", "- a\n", identity.ErrBadValue, 1, "mapping"},
		{"no devices", "other: 1\n", identity.ErrUnknownKey, 1, `unknown key "other"`},
		{"empty file", "{}\n", identity.ErrMissing, 1, "no devices"},
		{"devices not a list", "devices: x\n", identity.ErrBadValue, 1, "must be a list"},
		{"unknown device key", "devices:\n  - device: a\n    ble: [\"00:11:22:33:44:55\"]\n    bel: x\n", identity.ErrUnknownKey, 4, `devices[0]: unknown key "bel"`},
		{"unknown sender key", "devices:\n  - device: a\n    senders:\n      - {application: x, facilty: y}\n", identity.ErrUnknownKey, 4, `devices[0].senders[0]: unknown key "facilty"`},
		{"unknown patient key", "devices:\n  - device: a\n    patients:\n      - {id: x, auth: y}\n", identity.ErrUnknownKey, 4, `devices[0].patients[0]: unknown key "auth"`},
		{"repeated key", "devices:\n  - device: a\n    device: b\n", identity.ErrDuplicate, 3, `devices[0]: key "device" given twice`},
		{"no device id", "devices:\n  - ble: [\"00:11:22:33:44:55\"]\n", identity.ErrMissing, 2, "devices[0]: no device"},
		{"bad device id", "devices:\n  - device: \"a b/c\"\n    ble: [\"00:11:22:33:44:55\"]\n", identity.ErrBadValue, 2, "not a valid id"},
		{"device as list", "devices:\n  - device: [a]\n", identity.ErrBadValue, 2, "single value"},
		{"no identity", "devices:\n  - device: a\n", identity.ErrMissing, 2, "no identity"},
		{"bad BLE", "devices:\n  - device: a\n    ble: [\"C4:7C:8D:6A:12\"]\n", identity.ErrBadValue, 3, "devices[0].ble[0]"},
		{"empty equipment", "devices:\n  - device: a\n    equipment: [\"\"]\n", identity.ErrBadValue, 3, "equipment is empty"},
		{"sender without application", "devices:\n  - device: a\n    senders:\n      - {facility: y}\n", identity.ErrMissing, 4, "no application"},
		{"patient without id", "devices:\n  - device: a\n    patients:\n      - {authority: y}\n", identity.ErrMissing, 4, "no id"},
		{"duplicate device", "devices:\n  - device: a\n    ble: [\"00:11:22:33:44:55\"]\n  - device: a\n    ble: [\"00:11:22:33:44:56\"]\n", identity.ErrDuplicate, 4, `devices[1]: device "a" is already mapped at line 2 (devices[0])`},
		{"duplicate BLE across notations", "devices:\n  - device: a\n    ble: [\"00:11:22:33:44:aa\"]\n  - device: b\n    ble: [\"00-11-22-33-44-AA\"]\n", identity.ErrDuplicate, 5, "BLE address 00:11:22:33:44:AA is already mapped at line 3 (devices[0].ble[0])"},
		{"duplicate equipment, other case", "devices:\n  - device: a\n    equipment: [abc]\n  - device: b\n    equipment: [ABC]\n", identity.ErrDuplicate, 5, `devices[1].equipment[0]: equipment "ABC" is already mapped at line 3`},
		{"duplicate sender", "devices:\n  - device: a\n    senders: [{application: X, facility: F}]\n  - device: b\n    senders: [{application: x, facility: f}]\n", identity.ErrDuplicate, 5, "sender"},
		{"duplicate patient", "devices:\n  - device: a\n    patients: [{id: \"1\", authority: H}]\n    equipment: [e]\n  - device: b\n    patients: [{id: \"1\", authority: H}]\n", identity.ErrDuplicate, 6, `patient "1" authority "H" is already mapped at line 3`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := identity.Parse([]byte(c.yaml))
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			var ce *identity.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%T is not a *ConfigError", err)
			}
			if ce.Line != c.line {
				t.Errorf("line %d, want %d (%v)", ce.Line, c.line, err)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("%q does not say %q", err, c.text)
			}
		})
	}
}

func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	f, err := identity.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var _ identity.Resolver = f
	ctx := context.Background()
	if _, err := f.ResolveBLE(ctx, "00:11:22:33:44:55"); !errors.Is(err, identity.ErrUnknown) {
		t.Fatalf("before reload: %v", err)
	}
	write(good + "  - device: new-one\n    ble: [\"00:11:22:33:44:55\"]\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if b, err := f.ResolveBLE(ctx, "00:11:22:33:44:55"); err != nil || b.Device != "new-one" {
		t.Fatalf("after reload: %+v %v", b, err)
	}
	// A broken file is refused and the mapping in force stays.
	write(good + "  - device: new-one\n    bel: x\n")
	err = f.Reload()
	if !errors.Is(err, identity.ErrUnknownKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("broken reload: %v", err)
	}
	if b, err := f.ResolveBLE(ctx, "00:11:22:33:44:55"); err != nil || b.Device != "new-one" {
		t.Fatalf("after failed reload: %+v %v", b, err)
	}
	if _, err := identity.Open(filepath.Join(t.TempDir(), "absent.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}
