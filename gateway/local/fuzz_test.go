package local_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/gateway/local"
	"github.com/iomt/iomt/wire/senml"
)

// FuzzSubmit feeds arbitrary packs, as JSON and as CBOR, with and without a device name from
// the URL: every refusal is an *local.Error, and every accepted pack is SenML that resolves,
// under the platform device, with catalog codes and values in range.
func FuzzSubmit(f *testing.F) {
	now := time.Now()
	for _, s := range []string{
		`[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"temp","u":"Cel","v":37.2},{"n":"spo2","u":"/","v":0.97,"t":1}]`,
		`[{"n":"hr","v":72,"t":-5}]`,
		`[{"bn":"ecg-3:","bt":1.7e9,"n":"ecg","u":"mV","v":0.1},{"n":"ecg","v":0.2,"t":0.004}]`,
		`[{"n":"fall","vb":true}]`,
		`[{"n":"weight","u":"[lb_av]","v":150}]`,
		`[]`, `{}`, `[{"bv":1,"n":"x"}]`,
	} {
		f.Add([]byte(s), false, true)
		f.Add([]byte(s), true, false)
		if p, err := senml.DecodeJSON([]byte(s)); err == nil {
			if b, err := senml.EncodeCBOR(p); err == nil {
				f.Add(b, true, true)
			}
		}
	}
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		f.Fatal(err)
	}
	cat := codes.New()
	f.Fuzz(func(t *testing.T, body []byte, cbor, named bool) {
		sink := &memSink{}
		a, err := local.New(local.Config{Resolver: tab, Sink: sink, Catalog: cat})
		if err != nil {
			t.Fatal(err)
		}
		format, name := local.JSON, ""
		if cbor {
			format = local.CBOR
		}
		if named {
			name = "thermo-1"
		}
		res, err := a.Submit(context.Background(), "fuzz", name, format, body, now)
		if err != nil {
			var e *local.Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("refusal %v (%T) is not a *local.Error with a reason", err, err)
			}
			if len(sink.stored()) != 0 {
				t.Fatal("refused, but the sink got a pack")
			}
			return
		}
		got := sink.stored()
		if len(got) != 1 || got[0].device != res.Device || !res.Class.Valid() {
			t.Fatalf("accepted %+v, sink holds %d packs", res, len(got))
		}
		p, err := senml.DecodeJSON(got[0].pack)
		if err != nil {
			t.Fatalf("accepted pack is not SenML: %v", err)
		}
		rs, err := p.Resolve(now)
		if err != nil {
			t.Fatalf("accepted pack does not resolve: %v: %s", err, got[0].pack)
		}
		if len(rs) != res.Readings {
			t.Fatalf("%d records, result says %d", len(rs), res.Readings)
		}
		for _, r := range rs {
			id, ok := strings.CutPrefix(r.Name, res.Device+":")
			c, known := cat.ByID(id)
			if !ok || !known || r.Unit != c.Unit || r.Value == nil || *r.Value < c.Min || *r.Value > c.Max {
				t.Fatalf("record %+v is not a catalog reading of %s", r, res.Device)
			}
		}
	})
}
