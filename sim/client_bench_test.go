package sim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov1 "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkClientPublish compares MQTT clients as the simulator uses them: many devices, each
// on its own connection, each publishing one QoS 1 pack per round (as per tick), to Mosquitto
// on localhost:1883 — a separate process, so this process's CPU time is the clients' alone.
// It reports CPU-µs per publish (user + system). b.N is the number of publishes.
func BenchmarkClientPublish(b *testing.B) {
	const addr = "127.0.0.1:1883"
	if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		b.Skipf("no Mosquitto on %s: %v", addr, err)
	} else {
		c.Close()
	}
	const devices = 200
	for _, size := range []int{120, 3200} { // a vitals pack, an ECG pack (CBOR)
		payload := make([]byte, size)
		b.Run(fmt.Sprintf("lean/%dB", size), func(b *testing.B) { benchLean(b, addr, devices, payload) })
		b.Run(fmt.Sprintf("paho.golang/%dB", size), func(b *testing.B) { benchPaho(b, addr, devices, payload) })
		b.Run(fmt.Sprintf("paho.mqtt.golang+bufio/%dB", size), func(b *testing.B) { benchPahoV1(b, addr, devices, payload) })
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rounds runs b.N publishes as rounds of one publish per device, reporting CPU per publish.
func rounds(b *testing.B, devices int, publish func(dev, seq int, done func())) {
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(devices, b.N-sent)
		wg.Add(n)
		for d := range n {
			publish(d, sent+d, wg.Done)
		}
		wg.Wait()
		sent += n
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/publish")
}

func benchLean(b *testing.B, addr string, devices int, payload []byte) {
	ctx := context.Background()
	dones := make([]chan func(), devices)
	cs := make([]*Client, devices)
	for i := range cs {
		ch := make(chan func(), 1)
		dones[i] = ch
		cs[i] = NewClient(ClientOptions{Addr: addr, ClientID: fmt.Sprintf("bench-lean-%d", i), OnAck: func(Ack) { (<-ch)() }})
		if err := cs[i].Connect(ctx); err != nil {
			b.Fatal(err)
		}
		defer cs[i].Close()
	}
	rounds(b, devices, func(dev, _ int, done func()) {
		dones[dev] <- done
		if err := cs[dev].Publish(ctx, fmt.Sprintf("bench/lean/%d", dev), payload, 0); err != nil {
			b.Fatal(err)
		}
	})
}

func benchPaho(b *testing.B, addr string, devices int, payload []byte) {
	ctx := context.Background()
	cs := make([]*paho.Client, devices)
	for i := range cs {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		id := fmt.Sprintf("bench-paho-%d", i)
		cs[i] = paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id})
		if _, err := cs[i].Connect(ctx, &paho.Connect{KeepAlive: 60, CleanStart: true, ClientID: id}); err != nil {
			b.Fatal(err)
		}
		defer cs[i].Disconnect(&paho.Disconnect{})
	}
	rounds(b, devices, func(dev, _ int, done func()) {
		go func() {
			defer done()
			if _, err := cs[dev].Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("bench/paho/%d", dev), QoS: 1, Payload: payload}); err != nil {
				b.Error(err)
			}
		}()
	})
}

// bufConn reads through a bufio.Reader: paho.mqtt.golang reads the socket a few bytes at a
// time otherwise.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func benchPahoV1(b *testing.B, addr string, devices int, payload []byte) {
	cs := make([]pahov1.Client, devices)
	for i := range cs {
		o := pahov1.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("bench-pahov1-%d", i)).
			SetCleanSession(true).SetAutoReconnect(false).SetKeepAlive(60 * time.Second).
			SetCustomOpenConnectionFn(func(u *url.URL, _ pahov1.ClientOptions) (net.Conn, error) {
				c, err := net.Dial("tcp", u.Host)
				if err != nil {
					return nil, err
				}
				return &bufConn{c, bufio.NewReaderSize(c, 1024)}, nil
			})
		cs[i] = pahov1.NewClient(o)
		if t := cs[i].Connect(); t.Wait() && t.Error() != nil {
			b.Fatal(t.Error())
		}
		defer cs[i].Disconnect(0)
	}
	rounds(b, devices, func(dev, _ int, done func()) {
		t := cs[dev].Publish(fmt.Sprintf("bench/pahov1/%d", dev), 1, false, payload)
		go func() {
			defer done()
			if t.Wait(); t.Error() != nil {
				b.Error(t.Error())
			}
		}()
	})
}
