package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/iomt/iomt"
)

type device struct {
	ID          string
	Kind        string
	Identifiers []iomt.Identifier
	Token       string
}

type problem struct {
	Status int
	Detail string
}

// A device maker registers a device with its serial number and UDI: they come back with the
// device; a device of no listed kind is "other"; bad kinds and identifiers are refused with a
// reason that names them.
func TestDeviceIdentifiers(t *testing.T) {
	srv, _ := newServer(t)
	ids := []iomt.Identifier{{System: "urn:example:acme:serial", Value: "SN-0042"}, {System: "http://hl7.org/fhir/NamingSystem/gs1-di", Value: "00844588003288"}}
	var d device
	if st := call(t, srv, "POST", "/api/v1/devices", `{"kind":"other","identifiers":[{"system":"urn:example:acme:serial","value":"SN-0042"},{"system":"http://hl7.org/fhir/NamingSystem/gs1-di","value":"00844588003288"}]}`, &d); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if d.Kind != "other" || !slices.Equal(d.Identifiers, ids) || d.Token == "" {
		t.Fatalf("created %+v", d)
	}
	var got device
	if st := call(t, srv, "GET", "/api/v1/devices/"+d.ID, "", &got); st != http.StatusOK || !slices.Equal(got.Identifiers, ids) {
		t.Fatalf("GET: %d %+v", st, got)
	}
	for _, c := range []struct{ body, want string }{
		{`{"kind":"toaster"}`, `"kind" "toaster" is not a known device kind (activity-tracker, `},
		{`{"kind":"scale","identifiers":[{"system":"urn:x"}]}`, `"identifiers": identifier 0 has no value`},
		{`{"kind":"scale","identifiers":[{"system":"urn:x","value":"1"},{"system":"urn:x","value":"1"}]}`, `"identifiers": identifier 1 repeats identifier 0`},
		{`{"kind":"scale","identifiers":[{"system":"not a uri","value":"1"}]}`, `"identifiers": identifier 0: system "not a uri" is not a URI`},
		{`{"kind":"scale","identifiers":[{"value":"1","use":"official"}]}`, `unknown field "use"`},
	} {
		var p problem
		if st := call(t, srv, "POST", "/api/v1/devices", c.body, &p); st != http.StatusBadRequest || !strings.Contains(p.Detail, c.want) {
			t.Errorf("POST %s: %d %q, want 400 with %q", c.body, st, p.Detail, c.want)
		}
	}
	var list struct{ Devices []device }
	if call(t, srv, "GET", "/api/v1/devices", "", &list); len(list.Devices) != 1 {
		t.Errorf("refused devices were stored: %+v", list.Devices)
	}
}

// The OpenAPI document lists exactly the kinds the API accepts.
func TestOpenAPIDeviceKinds(t *testing.T) {
	srv, _ := newServer(t)
	var doc struct {
		Components struct {
			Schemas struct {
				DeviceIn struct {
					Properties struct {
						Kind struct{ Enum []string }
					}
				}
			}
		}
	}
	if st := call(t, srv, "GET", "/api/v1/openapi.json", "", &doc); st != http.StatusOK {
		t.Fatalf("openapi: %d", st)
	}
	if got, want := doc.Components.Schemas.DeviceIn.Properties.Kind.Enum, iomt.DeviceKinds(); !slices.Equal(got, want) {
		t.Errorf("openapi DeviceIn.kind enum %v, want %v", got, want)
	}
}
