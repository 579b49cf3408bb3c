package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
)

// A reading sent by a device is readable through the node's FHIR API and reaches the EHR
// through the export, once.
func TestFHIRReadAndExport(t *testing.T) {
	var mu sync.Mutex
	puts := map[string]int{}
	ehr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ehr-secret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		var bundle struct {
			Type  string
			Entry []struct {
				Request struct{ Method, URL string }
			}
		}
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &bundle); err != nil || bundle.Type != "transaction" {
			http.Error(w, "not a transaction", http.StatusBadRequest)
			return
		}
		resp := map[string]any{"resourceType": "Bundle", "type": "transaction-response"}
		var entries []any
		mu.Lock()
		for _, e := range bundle.Entry {
			puts[e.Request.Method+" "+e.Request.URL]++
			entries = append(entries, map[string]any{"response": map[string]string{"status": "201 Created"}})
		}
		mu.Unlock()
		resp["entry"] = entries
		w.Header().Set("Content-Type", "application/fhir+json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer ehr.Close()

	e := startWith(t, func(c *node.Config) {
		c.FHIRExport = node.FHIRExportConfig{URL: ehr.URL, Token: "ehr-secret"}
	})
	patient, dev := e.ward()
	at := time.Now().Add(-time.Minute).Truncate(time.Second).Unix()
	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(at, 10) + `,"n":"8867-4","u":"/min","v":71}]`)
	var res map[string]any
	if code := e.call("POST", "/api/v1/ingest", dev.Token, body, &res); code != 200 {
		t.Fatalf("ingest: %d %v", code, res)
	}

	var bundle struct {
		ResourceType string
		Total        int
		Entry        []struct {
			Resource struct {
				ID, ResourceType string
				ValueQuantity    struct {
					Value float64
					Unit  string
				}
				Subject struct{ Reference string }
			}
		}
	}
	if code := e.call("GET", "/fhir/r4/Observation?patient="+patient+"&code=http://loinc.org|8867-4", adminToken, nil, &bundle); code != 200 {
		t.Fatalf("FHIR search: %d", code)
	}
	if bundle.ResourceType != "Bundle" || len(bundle.Entry) != 1 || bundle.Entry[0].Resource.ValueQuantity.Value != 71 ||
		bundle.Entry[0].Resource.Subject.Reference != "Patient/"+patient {
		t.Fatalf("FHIR search answered %+v", bundle)
	}
	var outcome struct{ ResourceType string }
	if code := e.call("GET", "/fhir/r4/Patient/"+patient, "", nil, &outcome); code != 401 || outcome.ResourceType != "OperationOutcome" {
		t.Fatalf("FHIR read without a token: %d %s", code, outcome.ResourceType)
	}

	want := "PUT Observation/" + bundle.Entry[0].Resource.ID
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := puts[want]
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("EHR got %v, want one %s", puts, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var dl struct{ DeadLetters []any }
	if code := e.call("GET", "/api/v1/export/dead-letters", adminToken, nil, &dl); code != 200 || len(dl.DeadLetters) != 0 {
		t.Fatalf("dead letters: %d %v", code, dl)
	}
	if code := e.call("GET", "/api/v1/export/dead-letters", "", nil, nil); code != 401 {
		t.Fatalf("dead letters without a token: %d", code)
	}
}
