package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
)

func TestRetention(t *testing.T) {
	if !scaleOut {
		_, err := node.Start(context.Background(), node.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			People: node.PeopleConfig{BootstrapToken: adminToken}, Retention: 72 * time.Hour})
		if err == nil || !strings.Contains(err.Error(), "--postgres") {
			t.Fatalf("retention on the embedded store: %v, want a refusal naming --postgres", err)
		}
		return
	}
	first := start(t)
	pg := ""
	patient, dev := first.ward()
	now := time.Now().Truncate(time.Second)
	old := now.Add(-10 * 24 * time.Hour)
	body := fmt.Sprintf(`[{"bn":"urn:dev:id:%s:","n":"8867-4","u":"/min","bt":%d,"v":61},{"n":"8867-4","u":"/min","t":%d,"v":62}]`,
		dev.ID, old.Unix(), now.Unix()-old.Unix()-60)
	if code := first.call("POST", "/api/v1/ingest", dev.Token, []byte(body), nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	count := func(e *env) int {
		var s series
		from := old.Add(-time.Hour).UTC().Format(time.RFC3339)
		e.call("GET", "/api/v1/patients/"+patient+"/observations?code=8867-4&from="+from, adminToken, nil, &s)
		return len(s.Points)
	}
	if n := count(first); n != 2 {
		t.Fatalf("%d readings before retention, want 2", n)
	}
	pg = first.pg
	second := startWith(t, func(c *node.Config) { c.Postgres = pg; c.Retention = 72 * time.Hour })
	deadline := time.Now().Add(10 * time.Second)
	for count(second) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d readings after a 72 h retention, want the recent one only", count(second))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
