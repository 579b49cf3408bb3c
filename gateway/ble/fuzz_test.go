package ble_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway/ble"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/senml"
)

// FuzzServeHTTP feeds arbitrary bodies to the handler: it must answer one of its documented
// statuses with a Response, and whatever it accepted must be a SenML pack that resolves.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range []string{
		`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A37","payload_hex":"1E 55 32 00 21 00"}`,
		`[{"address":"C4:7C:8D:6A:12:34","characteristic":"2AA7","payload_hex":"0FE3D2E40500021 4FF02F0E5F38E3F"}]`,
		`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A5E","payload_base64":"D6zzvvXoBwsdFwg5IEAiAABm4w==","received":"2026-01-01T00:00:00Z"}`,
		`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A35","payload_hex":"1E8A00580078000000041114293B3C00012700"}`,
		`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A18","payload_hex":"1B0100E307021B0B0A1EFBFF1E00120501"}`,
		`{"address":"C4:7C:8D:6A:12:34","characteristic":"2A9D","payload_hex":"0E0102040305060708090A0B0C0D0E"}`,
		`[]`, `{}`, `[{"address":1}]`, `null`,
	} {
		f.Add(s)
	}
	tab, err := identity.Parse([]byte(mapping))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		sink := &memSink{}
		h, err := ble.New(ble.Config{Resolver: tab, Sink: sink, Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var resp ble.Response
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer is not a Response: %v", err)
		}
		if rec.Code != http.StatusOK && len(sink.stored()) != 0 {
			t.Fatalf("status %d but the sink got packs", rec.Code)
		}
		for _, p := range sink.stored() {
			pk, err := senml.DecodeJSON(p.pack)
			if err != nil {
				t.Fatalf("accepted pack is not SenML: %v", err)
			}
			if _, err := pk.Resolve(time.Now()); err != nil {
				t.Fatalf("accepted pack does not resolve: %v: %s", err, p.pack)
			}
		}
	})
}
