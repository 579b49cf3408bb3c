package node_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomt/iomt/node"
)

// A routing with a webhook on a node given no signing secret: the delivery is counted and
// logged as failed, not skipped in silence, and nothing unsigned is sent.
func TestUnconfiguredChannelFailsLoudly(t *testing.T) {
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer hook.Close()
	alarms := hookedAlarms(t, hook.URL)
	alarms.WebhookSecret = ""
	e := startWith(t, func(c *node.Config) { c.Alarms = alarms })
	_, dev := e.ward()
	body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","bt":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"n":"59408-5","u":"%","v":84}]`)
	if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	want := `iomt_alarm_deliveries_total{channel="webhook",outcome="failed"}`
	e.waitMetric(t, want, 15*time.Second)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d unsigned webhook requests sent", n)
	}
}
