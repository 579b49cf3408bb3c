package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/node"
	"github.com/iomt/iomt/wire/senml"
)

// BenchmarkMQTTIngest drives the whole path: many devices, each a real MQTT 5 client on its own
// connection, publish one-second packs of 250 Hz ECG (250 samples) at QoS 1 with one pack in
// flight per device; the node decodes, validates, stores durably (fsync) and acknowledges.
// b.N is the number of packs in all.
func BenchmarkMQTTIngest(b *testing.B) {
	for _, c := range []struct {
		devices int
		format  string
	}{{100, "json"}, {100, "cbor"}, {1000, "cbor"}} {
		b.Run(fmt.Sprintf("devices=%d/%s", c.devices, c.format), func(b *testing.B) { benchMQTT(b, c.devices, c.format) })
	}
}

func benchMQTT(b *testing.B, devices int, format string) {
	n, err := node.Start(context.Background(), node.Config{
		DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", People: node.PeopleConfig{BootstrapToken: "bench-bootstrap-token"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	st := n.Store()
	type client struct {
		c     *paho.Client
		topic string
	}
	clients := make([]client, devices)
	for i := range clients {
		pid, did := fmt.Sprintf("p%04d", i), fmt.Sprintf("d%04d", i)
		if err := st.CreatePatient(ctx, iomt.Patient{ID: pid, Tenant: iomt.DefaultTenant, Name: pid, CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		d := iomt.Device{ID: did, Tenant: iomt.DefaultTenant, Kind: "ecg-patch", Patient: pid, CreatedAt: time.Now()}
		creds, err := ingest.NewCredentials(&d)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.CreateDevice(ctx, d); err != nil {
			b.Fatal(err)
		}
		conn, err := net.Dial("tcp", n.MQTTAddr())
		if err != nil {
			b.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: did})
		if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 60, CleanStart: true, ClientID: did, Username: did, UsernameFlag: true, Password: []byte(creds.MQTTPassword), PasswordFlag: true}); err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(&paho.Disconnect{})
		clients[i] = client{c, "iomt/v1/default/devices/" + did + "/senml"}
	}
	start := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	encode := senml.EncodeJSON
	if format == "cbor" {
		encode = senml.EncodeCBOR
	}
	pack := func(sec int) []byte {
		p := make(senml.Pack, 250)
		for i := range p {
			v := float64((sec*250+i)%200)*0.005 - 0.5
			p[i] = senml.Record{Name: "MDC_ECG_ELEC_POTL_II", Time: float64(i) * 0.004, Value: &v}
		}
		p[0].BaseName, p[0].BaseUnit = "urn:dev:x:", "mV"
		p[0].BaseTime = float64(start.Unix() + int64(sec))
		data, _ := encode(p)
		return data
	}
	// Pre-encode so the benchmark measures the server, not the clients' encoders.
	packs := make([][]byte, 64)
	for i := range packs {
		packs[i] = pack(i)
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(cl client) {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= int64(b.N) {
					return
				}
				// Each device's packs have their own times: k's slot within the device's run.
				sec := int(k) / devices
				payload := packs[sec%len(packs)]
				if sec >= len(packs) {
					payload = pack(sec)
				}
				r, err := cl.c.Publish(ctx, &paho.Publish{Topic: cl.topic, QoS: 1, Payload: payload})
				if err != nil || r.ReasonCode != 0 {
					failed.Add(1)
				}
			}
		}(clients[i])
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d publishes failed", f)
	}
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/el, "msgs/s")
	b.ReportMetric(float64(b.N)*250/el, "samples/s")
}
