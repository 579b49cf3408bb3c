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

	"github.com/iomt/iomt/alarm/notify"
)

// A nurse silences a patient's alarms; the node restarts on the same data. A new alarm of that
// patient during the silence is raised silenced and pages no one; when the silence ends, the
// ward's hook hears of it.
func TestPatientSilenceSurvivesRestart(t *testing.T) {
	// Long enough for a restart (a NATS lease to expire, in the scale-out pass) and a reading.
	const silence = 12 * time.Second
	var mu sync.Mutex
	var reasons []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p notify.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		reasons = append(reasons, string(p.Reason))
		mu.Unlock()
	}))
	defer hook.Close()
	heard := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reasons...)
	}
	edit := restartable(t, hookedAlarms(t, hook.URL))
	e := startWith(t, edit)
	patient, dev := e.ward()
	var silenced struct{ Silenced []json.RawMessage }
	// 503 while the node is still taking its partitions (scale-out): the API asks to retry.
	for deadline := time.Now().Add(20 * time.Second); ; {
		code := e.call("POST", "/api/v1/alarms/silence", adminToken, map[string]string{
			"patient": patient, "for": silence.String(), "why": "washing"}, &silenced)
		if code == 200 && len(silenced.Silenced) == 0 {
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("silence: %d %+v", code, silenced)
		}
	}
	end := time.Now().Add(silence)
	if code := e.call("POST", "/api/v1/alarms/silence", adminToken, map[string]string{"patient": "pt_nosuch", "for": "1m"}, nil); code != 404 {
		t.Fatalf("silence of an unknown patient: %d, want 404", code)
	}
	// Bad requests change nothing: too long (over the hour), no scope, not a duration.
	for body, want := range map[string]int{`{"patient":"` + patient + `","for":"2h"}`: 422, `{"for":"5m"}`: 400, `{"patient":"` + patient + `","for":"soon"}`: 400} {
		if code := e.call("POST", "/api/v1/alarms/silence", adminToken, []byte(body), nil); code != want {
			t.Errorf("silence %s: %d, want %d", body, code, want)
		}
	}
	if err := e.n.Close(); err != nil {
		t.Fatal(err)
	}
	e = startWith(t, edit)

	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `e-3,"n":"59408-5","u":"%","v":88}]`)
	if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	var list struct {
		Alarms []struct {
			ID            string
			SilencedUntil time.Time
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(list.Alarms) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alarm raised after the restart")
		}
		e.call("GET", "/api/v1/alarms?state=active&patient="+patient, adminToken, nil, &list)
	}
	if time.Now().After(end) {
		t.Fatalf("the alarm came after the %s silence had ended: this machine restarted too slowly for the test", silence)
	}
	if su := list.Alarms[0].SilencedUntil; su.IsZero() || su.After(end) {
		t.Fatalf("alarm raised during the silence: silenced until %v, want the silence's end (≤ %v)", su, end)
	}
	for deadline := time.Now().Add(silence + 10*time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := heard()
		if len(got) > 0 {
			if got[0] != "silence-expired" || time.Now().Before(list.Alarms[0].SilencedUntil) {
				t.Fatalf("hook heard %v at %v, silenced until %v: want silence-expired, once it ended", got, time.Now(), list.Alarms[0].SilencedUntil)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the hook heard nothing after the silence ended")
		}
	}
}
