package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Errors a mapping file is refused with; a *ConfigError wraps one of them.
var (
	ErrSyntax     = errors.New("not valid YAML")
	ErrUnknownKey = errors.New("unknown key")
	ErrMissing    = errors.New("required key missing")
	ErrBadValue   = errors.New("invalid value")
	ErrDuplicate  = errors.New("duplicate")
)

// ConfigError says where a mapping file is wrong: the line and the entry.
type ConfigError struct {
	Line   int    // 1-based; 0 when not known
	Entry  string // e.g. devices[2].senders[0]; empty for the file as a whole
	Reason string
	Err    error // one of ErrSyntax, ErrUnknownKey, ErrMissing, ErrBadValue, ErrDuplicate
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("identity: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Entry != "" {
		b.WriteString(e.Entry + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Table is one immutable mapping; it implements Resolver.
type Table struct {
	devices   []Binding
	ble       map[string]int // normalised address → index in devices
	equipment map[string]int // upper-cased equipment id
	patients  map[PatientID]int
	senders   map[senderKey]int
	local     map[string]int // lower-cased local SenML device name
}

// senderKey is an upper-cased MSH-3 id (namespace or universal id) and MSH-4 id ("" = any).
type senderKey struct{ app, fac string }

// Len is the number of devices in the table.
func (t *Table) Len() int { return len(t.devices) }

// ResolveBLE implements Resolver.
func (t *Table) ResolveBLE(_ context.Context, addr string) (Binding, error) {
	norm, err := NormaliseBLE(addr)
	if err != nil {
		return Binding{}, err
	}
	if i, ok := t.ble[norm]; ok {
		return t.via(i, fmt.Sprintf("BLE %s", norm)), nil
	}
	return Binding{}, &UnknownError{Identity: fmt.Sprintf("BLE address %s", norm)}
}

// ResolveHL7 implements Resolver.
func (t *Table) ResolveHL7(_ context.Context, s HL7Sender) (Binding, error) {
	for _, e := range s.Equipment {
		if i, ok := t.equipment[strings.ToUpper(e)]; ok {
			return t.via(i, fmt.Sprintf("equipment %q", e)), nil
		}
	}
	for _, p := range s.Patients {
		if i, ok := t.patients[p]; ok {
			return t.via(i, fmt.Sprintf("patient %q (authority %q)", p.ID, p.Authority)), nil
		}
		if i, ok := t.patients[PatientID{ID: p.ID}]; ok {
			return t.via(i, fmt.Sprintf("patient %q", p.ID)), nil
		}
	}
	for _, app := range []string{s.Application.UniversalID, s.Application.Namespace} {
		if app == "" {
			continue
		}
		for _, fac := range []string{s.Facility.UniversalID, s.Facility.Namespace, ""} {
			if i, ok := t.senders[senderKey{strings.ToUpper(app), strings.ToUpper(fac)}]; ok {
				return t.via(i, fmt.Sprintf("sender %q facility %q", app, fac)), nil
			}
		}
	}
	return Binding{}, &UnknownError{Identity: s.String()}
}

// ResolveLocal implements LocalResolver.
func (t *Table) ResolveLocal(_ context.Context, name string) (Binding, error) {
	if !localName.MatchString(name) {
		return Binding{}, fmt.Errorf("identity: %q is not a local device name (letters, digits and - : . / _, at most 128): %w", name, ErrBadValue)
	}
	if i, ok := t.local[strings.ToLower(name)]; ok {
		return t.via(i, fmt.Sprintf("local name %q", name)), nil
	}
	return Binding{}, &UnknownError{Identity: fmt.Sprintf("local device name %q", name)}
}

func (t *Table) via(i int, how string) Binding {
	b := t.devices[i]
	b.Via = how
	return b
}

// NormaliseBLE checks a 48-bit BLE address (colons or hyphens) and writes it upper case with
// colons, the form the table keys on.
func NormaliseBLE(addr string) (string, error) {
	hw, err := net.ParseMAC(addr)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("identity: %q is not a 48-bit BLE address like C4:7C:8D:6A:12:34: %w", addr, ErrBadValue)
	}
	return strings.ToUpper(hw.String()), nil
}

// deviceID is what a platform device id may look like: it becomes part of MQTT topics and
// SenML names, so no spaces, slashes or wildcards.
var deviceID = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$`)

// localName is what a local SenML device may call itself: the characters RFC 8428 §4.5.1
// allows in a name (a base name such as urn:dev:mac:0024befffe804ff1 or a short label).
var localName = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9:./_]{0,127}$`)

// Parse reads a mapping file:
//
//	devices:
//	  - device: icu3-bed01-monitor     # platform device id (required)
//	    kind: bedside-monitor           # optional
//	    ble: ["C4:7C:8D:6A:12:34"]
//	    equipment: ["0123456789ABCDEF"] # OBX-18 / MDS equipment id (EUI-64)
//	    senders:                        # MSH-3 (namespace or universal id), MSH-4 optional
//	      - {application: "080019FFFF4F6AC0", facility: MMS}
//	    patients:                       # PID-3 id, authority optional (then any authority)
//	      - {id: AB60001, authority: A}
//	    local: ["urn:dev:mac:0024befffe804ff1"] # SenML device name (bn or URL path segment)
//
// Unknown keys, a missing device, malformed values and an identity mapped twice are refused
// with a *ConfigError naming the line and the entry. Identifiers are compared without regard
// to case, except patient identifiers, which HL7 treats as exact strings.
func Parse(data []byte) (*Table, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, &ConfigError{Reason: "not valid YAML: " + err.Error(), Err: ErrSyntax}
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &ConfigError{Line: doc.Line, Reason: "the file must be a mapping with a devices list", Err: ErrBadValue}
	}
	p := parser{t: &Table{
		ble: map[string]int{}, equipment: map[string]int{}, patients: map[PatientID]int{}, senders: map[senderKey]int{}, local: map[string]int{},
	}, seen: map[string]where{}}
	root := doc.Content[0]
	fields, err := p.mapping(root, "", "devices")
	if err != nil {
		return nil, err
	}
	list, ok := fields["devices"]
	if !ok {
		return nil, &ConfigError{Line: root.Line, Reason: "no devices key", Err: ErrMissing}
	}
	if list.Kind != yaml.SequenceNode {
		return nil, &ConfigError{Line: list.Line, Entry: "devices", Reason: "devices must be a list", Err: ErrBadValue}
	}
	for i, n := range list.Content {
		if err := p.device(n, fmt.Sprintf("devices[%d]", i)); err != nil {
			return nil, err
		}
	}
	return p.t, nil
}

// where is the first occurrence of an identity, for duplicate errors.
type where struct {
	line  int
	entry string
}

type parser struct {
	t    *Table
	seen map[string]where // "kind\x00key" → first occurrence
}

// mapping checks that n is a mapping with only the allowed keys and returns its values.
func (p *parser) mapping(n *yaml.Node, entry string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &ConfigError{Line: n.Line, Entry: entry, Reason: "expected a mapping with keys " + strings.Join(allowed, ", "), Err: ErrBadValue}
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			return nil, &ConfigError{Line: k.Line, Entry: entry, Reason: fmt.Sprintf("unknown key %q (known: %s)", k.Value, strings.Join(allowed, ", ")), Err: ErrUnknownKey}
		}
		// yaml.v3 checks repeated keys only when decoding into Go values, not into a Node.
		if _, dup := out[k.Value]; dup {
			return nil, &ConfigError{Line: k.Line, Entry: entry, Reason: fmt.Sprintf("key %q given twice", k.Value), Err: ErrDuplicate}
		}
		out[k.Value] = v
	}
	return out, nil
}

// scalar returns the text of a scalar node exactly as written (so 0123 stays 0123).
func scalar(n *yaml.Node, entry, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", &ConfigError{Line: n.Line, Entry: entry, Reason: key + " must be a single value", Err: ErrBadValue}
	}
	s := strings.TrimSpace(n.Value)
	if s == "" {
		return "", &ConfigError{Line: n.Line, Entry: entry, Reason: key + " is empty", Err: ErrBadValue}
	}
	return s, nil
}

func (p *parser) claim(kind, key string, n *yaml.Node, entry string) error {
	k := kind + "\x00" + key
	if first, dup := p.seen[k]; dup {
		return &ConfigError{Line: n.Line, Entry: entry,
			Reason: fmt.Sprintf("%s %s is already mapped at line %d (%s)", kind, key, first.line, first.entry), Err: ErrDuplicate}
	}
	p.seen[k] = where{n.Line, entry}
	return nil
}

func (p *parser) device(n *yaml.Node, entry string) error {
	f, err := p.mapping(n, entry, "device", "kind", "ble", "equipment", "senders", "patients", "local")
	if err != nil {
		return err
	}
	idNode, ok := f["device"]
	if !ok {
		return &ConfigError{Line: n.Line, Entry: entry, Reason: "no device (the platform device id)", Err: ErrMissing}
	}
	id, err := scalar(idNode, entry, "device")
	if err != nil {
		return err
	}
	if !deviceID.MatchString(id) {
		return &ConfigError{Line: idNode.Line, Entry: entry, Reason: fmt.Sprintf("device %q is not a valid id (letters, digits, - _ .)", id), Err: ErrBadValue}
	}
	if err := p.claim("device", fmt.Sprintf("%q", id), idNode, entry); err != nil {
		return err
	}
	b := Binding{Device: id}
	if k, ok := f["kind"]; ok {
		if b.Kind, err = scalar(k, entry, "kind"); err != nil {
			return err
		}
	}
	idx := len(p.t.devices)
	p.t.devices = append(p.t.devices, b)
	identities := 0

	items := func(key string) ([]*yaml.Node, error) {
		n, ok := f[key]
		if !ok {
			return nil, nil
		}
		if n.Kind != yaml.SequenceNode {
			return nil, &ConfigError{Line: n.Line, Entry: entry, Reason: key + " must be a list", Err: ErrBadValue}
		}
		identities += len(n.Content)
		return n.Content, nil
	}
	ble, err := items("ble")
	if err != nil {
		return err
	}
	for i, v := range ble {
		e := fmt.Sprintf("%s.ble[%d]", entry, i)
		s, err := scalar(v, e, "ble")
		if err != nil {
			return err
		}
		addr, err := NormaliseBLE(s)
		if err != nil {
			return &ConfigError{Line: v.Line, Entry: e, Reason: fmt.Sprintf("%q is not a 48-bit BLE address like C4:7C:8D:6A:12:34", s), Err: ErrBadValue}
		}
		if err := p.claim("BLE address", addr, v, e); err != nil {
			return err
		}
		p.t.ble[addr] = idx
	}
	eq, err := items("equipment")
	if err != nil {
		return err
	}
	for i, v := range eq {
		e := fmt.Sprintf("%s.equipment[%d]", entry, i)
		s, err := scalar(v, e, "equipment")
		if err != nil {
			return err
		}
		key := strings.ToUpper(s)
		if err := p.claim("equipment", fmt.Sprintf("%q", key), v, e); err != nil {
			return err
		}
		p.t.equipment[key] = idx
	}
	senders, err := items("senders")
	if err != nil {
		return err
	}
	for i, v := range senders {
		e := fmt.Sprintf("%s.senders[%d]", entry, i)
		sf, err := p.mapping(v, e, "application", "facility")
		if err != nil {
			return err
		}
		an, ok := sf["application"]
		if !ok {
			return &ConfigError{Line: v.Line, Entry: e, Reason: "no application (MSH-3 namespace or universal id)", Err: ErrMissing}
		}
		app, err := scalar(an, e, "application")
		if err != nil {
			return err
		}
		var fac string
		if fn, ok := sf["facility"]; ok {
			if fac, err = scalar(fn, e, "facility"); err != nil {
				return err
			}
		}
		key := senderKey{strings.ToUpper(app), strings.ToUpper(fac)}
		if err := p.claim("sender", fmt.Sprintf("%q facility %q", key.app, key.fac), v, e); err != nil {
			return err
		}
		p.t.senders[key] = idx
	}
	pats, err := items("patients")
	if err != nil {
		return err
	}
	for i, v := range pats {
		e := fmt.Sprintf("%s.patients[%d]", entry, i)
		pf, err := p.mapping(v, e, "id", "authority")
		if err != nil {
			return err
		}
		in, ok := pf["id"]
		if !ok {
			return &ConfigError{Line: v.Line, Entry: e, Reason: "no id (PID-3.1)", Err: ErrMissing}
		}
		var pid PatientID
		if pid.ID, err = scalar(in, e, "id"); err != nil {
			return err
		}
		if an, ok := pf["authority"]; ok {
			if pid.Authority, err = scalar(an, e, "authority"); err != nil {
				return err
			}
		}
		if err := p.claim("patient", fmt.Sprintf("%q authority %q", pid.ID, pid.Authority), v, e); err != nil {
			return err
		}
		p.t.patients[pid] = idx
	}
	locals, err := items("local")
	if err != nil {
		return err
	}
	for i, v := range locals {
		e := fmt.Sprintf("%s.local[%d]", entry, i)
		s, err := scalar(v, e, "local")
		if err != nil {
			return err
		}
		if !localName.MatchString(s) {
			return &ConfigError{Line: v.Line, Entry: e, Reason: fmt.Sprintf("%q is not a local device name (letters, digits and - : . / _, at most 128)", s), Err: ErrBadValue}
		}
		key := strings.ToLower(s)
		if err := p.claim("local name", fmt.Sprintf("%q", key), v, e); err != nil {
			return err
		}
		p.t.local[key] = idx
	}
	if identities == 0 {
		return &ConfigError{Line: n.Line, Entry: entry, Reason: fmt.Sprintf("device %q has no identity (ble, equipment, senders, patients or local)", id), Err: ErrMissing}
	}
	return nil
}
