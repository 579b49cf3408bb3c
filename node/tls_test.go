package node_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
	"github.com/iomt/iomt/gateway/uplink/uplinktest"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/wire/senml"
)

// With --mqtt-tls-cert/--mqtt-tls-key the broker speaks MQTT over TLS: a gateway that
// verifies the server against its CA delivers; one that trusts another CA never connects.
func TestMQTTOverTLS(t *testing.T) {
	pki := uplinktest.NewPKI(t, "gw")
	e := startWith(t, func(c *node.Config) { c.MQTTTLSCert, c.MQTTTLSKey = pki.ServerCert, pki.ServerKey })
	patient, mon := e.ward()
	gw := e.gatewayDevice()
	e.behind(gw, mon)
	_, port, _ := net.SplitHostPort(e.n.MQTTAddr())

	drain := func(caFile string, wait time.Duration) int {
		t.Helper()
		sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		v := 72.0
		pack, _ := senml.EncodeJSON(senml.Pack{{BaseName: mon.ID + ":", Name: "8867-4", Unit: "/min", Value: &v,
			Time: float64(time.Now().Add(-time.Second).UnixMilli()) / 1000}})
		if _, err := sp.Put(context.Background(), spool.Entry{Device: mon.ID, Class: gateway.Spot, Payload: pack}); err != nil {
			t.Fatal(err)
		}
		tc, err := uplink.TLSConfig(caFile, "", "")
		if err != nil {
			t.Fatal(err)
		}
		u, err := uplink.New(uplink.Config{Spool: sp, URL: "mqtts://127.0.0.1:" + port, TLS: tc,
			Username: gw.MQTT.Username, Password: []byte(gw.MQTT.Password), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- u.Run(ctx) }()
		defer func() { cancel(); <-done }()
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if d, _, _ := sp.Stats(); d == 0 {
				return 0
			}
		}
		d, _, _ := sp.Stats()
		return d
	}
	if left := drain(uplinktest.NewPKI(t, "gw").CAFile, 2*time.Second); left != 1 {
		t.Fatalf("a gateway trusting another CA delivered (%d left in its spool)", left)
	}
	if left := drain(pki.CAFile, 10*time.Second); left != 0 {
		t.Fatal("not delivered over TLS")
	}
	obs, err := e.n.Store().Observations(context.Background(), iomt.ObservationQuery{Patient: patient, Code: "8867-4",
		From: time.Now().Add(-time.Minute), To: time.Now().Add(time.Minute)})
	if err != nil || len(obs) != 1 {
		t.Fatalf("stored %+v, %v", obs, err)
	}
}
