package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/sensing"
)

// An ECG patch's lead, sent as SenML, reaches the rhythm monitor through the bus, and the
// onset of atrial fibrillation reaches the patient's live stream as an ecg-rhythm event.
func TestECGRhythmEventOnLiveStream(t *testing.T) {
	e := start(t)
	patient, dev := e.ward()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/patients/"+patient+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if ev, ok := strings.CutPrefix(line, "event: "); ok {
				event = ev
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && event == "ecg-rhythm" {
				var r struct{ Kind, State string }
				if json.Unmarshal([]byte(data), &r) == nil && r.Kind == "af" && r.State == "started" {
					found <- data
					return
				}
			}
		}
	}()

	// Seven minutes of the af-onset scenario (AF from minute 5), dated in the recent past.
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	p := sensing.NewPatient(sensing.Builtin()["af-onset"], 3, t0)
	for now := t0.Add(time.Second); !now.After(t0.Add(7 * time.Minute)); now = now.Add(time.Second) {
		for _, em := range p.Advance(now) {
			for _, c := range em.Chunks {
				if c.Code != sensing.CodeECGII {
					continue
				}
				var b strings.Builder
				fmt.Fprintf(&b, `[{"bn":"urn:dev:id:%s:","bt":%.3f,"n":"%s","u":"mV","t":0,"v":%.3f}`, dev.ID, float64(c.Start.UnixMilli())/1000, c.Code, c.Values[0])
				for i, v := range c.Values[1:] {
					fmt.Fprintf(&b, `,{"n":"%s","t":%.3f,"v":%.3f}`, c.Code, float64(i+1)*c.Period.Seconds(), v)
				}
				b.WriteString("]")
				if code := e.call("POST", "/api/v1/ingest", dev.Token, []byte(b.String()), nil); code != 200 {
					t.Fatalf("ingest of ECG at %v: %d", c.Start, code)
				}
			}
		}
	}
	select {
	case data := <-found:
		t.Logf("live stream: ecg-rhythm %s", data)
	case <-ctx.Done():
		t.Fatal("no AF onset on the live stream")
	}
	// The episode reaches the alarm engine too: the built-in af rule raises a medium alarm.
	var l struct {
		Alarms []struct{ Rule, Priority, State string }
	}
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		e.call("GET", "/api/v1/alarms?patient="+patient, adminToken, nil, &l)
		if len(l.Alarms) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(l.Alarms) != 1 || l.Alarms[0].Rule != "af" || l.Alarms[0].Priority != "medium" || l.Alarms[0].State != "active" {
		t.Errorf("alarms after AF onset: %+v, want one active medium af alarm", l.Alarms)
	}
}
