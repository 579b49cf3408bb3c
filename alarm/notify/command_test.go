package notify

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/store/embedded"
)

// A device connected to the real embedded broker receives a command on its .../cmd topic and
// acknowledges it. The broker lets devices publish only SenML, so the test device's ack is
// handed to HandleAck directly: the uplink topic for acks is the wiring's to add (README).
func TestDeviceCommandOverEmbeddedBroker(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	dev := iomt.Device{ID: "bp-1", Tenant: iomt.DefaultTenant, Kind: "bp-monitor", Patient: "p1", CreatedAt: time.Now()}
	creds, err := ingest.NewCredentials(&dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	b := memory.New(memory.Options{})
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broker, err := mqtt.New(ln, ingest.New(codes.New(), st, st, b, nil, nil, ingest.Options{}), ingest.Authenticator{Registry: st}, mqtt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.Serve(); err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	cmdr := &MQTTCommander{Tenant: iomt.DefaultTenant, Publish: broker.SendCommand, Timeout: 3 * time.Second}
	received := make(chan alarm.Command, 4)
	opts := mqtt3.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID("bp-1").
		SetUsername("bp-1").SetPassword(creds.MQTTPassword)
	cl := mqtt3.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	tok := cl.Subscribe(mqtt.CommandTopic(iomt.DefaultTenant, "bp-1"), 1, func(_ mqtt3.Client, m mqtt3.Message) {
		var c alarm.Command
		if err := json.Unmarshal(m.Payload(), &c); err != nil {
			t.Error(err)
			return
		}
		received <- c
		status := "ok"
		if c.Name != "measure-bp" {
			status = "rejected"
		}
		ack, _ := json.Marshal(Ack{Command: c.ID, Status: status, Detail: "unknown command " + c.Name, Time: time.Now()})
		if err := cmdr.HandleAck("bp-1", ack); err != nil {
			t.Error(err)
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	n := &DeviceNotifier{Commander: cmdr, Resolve: func(_ context.Context, patient, kind string) (string, error) {
		ds, err := st.Devices(ctx, iomt.DeviceFilter{Patient: patient})
		for _, d := range ds {
			if d.Kind == kind {
				return d.ID, nil
			}
		}
		return "", err
	}}
	d := alarm.Delivery{ID: "dl_cmd", Channel: alarm.DeviceCmd, Command: &alarm.Command{ID: "dl_cmd", Name: "measure-bp", Alarm: "al_1", Patient: "p1", Target: "bp-monitor"}}
	if err := n.Notify(ctx, d, testAlarm); err != nil {
		t.Fatal(err)
	}
	if c := <-received; c.ID != "dl_cmd" || c.Device != "bp-1" || c.Name != "measure-bp" || c.Alarm != "al_1" {
		t.Errorf("device got %+v", c)
	}
	d.Command = &alarm.Command{ID: "dl_cmd2", Name: "self-destruct", Patient: "p1", Target: "bp-monitor"}
	if err := n.Notify(ctx, d, testAlarm); err == nil || !strings.Contains(err.Error(), "rejected it: unknown command self-destruct") {
		t.Errorf("rejected command: %v", err)
	}
	if err := cmdr.HandleAck("bp-1", []byte(`{"command":"dl_nothing","status":"ok"}`)); err == nil {
		t.Error("ack of no pending command accepted")
	}
	// No ack at all: no device listens any more.
	if tok := cl.Unsubscribe(mqtt.CommandTopic(iomt.DefaultTenant, "bp-1")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	quiet := &MQTTCommander{Tenant: iomt.DefaultTenant, Publish: broker.SendCommand, Timeout: 200 * time.Millisecond}
	if _, err := quiet.SendCommand(ctx, "bp-1", alarm.Command{ID: "dl_q", Name: "measure-bp"}); err == nil || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Errorf("silent device: %v", err)
	}
}

// loopback is a device on the other end of a Publish function: it acks what it is sent.
func TestMQTTCommanderAckFlow(t *testing.T) {
	var cmdr *MQTTCommander
	var sent []alarm.Command
	cmdr = &MQTTCommander{Tenant: "t", Timeout: time.Second, Publish: func(tenant, device string, payload []byte) error {
		var c alarm.Command
		if err := json.Unmarshal(payload, &c); err != nil {
			return err
		}
		sent = append(sent, c)
		go func() {
			ack, _ := json.Marshal(Ack{Command: c.ID, Status: "ok"})
			_ = cmdr.HandleAck(device, ack)
			_ = cmdr.HandleAck(device, ack) // a repeated ack is harmless
		}()
		return nil
	}}
	ack, err := cmdr.SendCommand(context.Background(), "bp-1", alarm.Command{ID: "c1", Name: "measure-bp", Target: "bp-monitor"})
	if err != nil || !ack.OK() || ack.Device != "bp-1" || len(sent) != 1 || sent[0].Device != "bp-1" {
		t.Fatalf("%+v %v %+v", ack, err, sent)
	}
	if err := cmdr.HandleAck("bp-2", []byte(`{"command":"c1","device":"bp-1","status":"ok"}`)); err == nil {
		t.Error("ack naming another device accepted")
	}
}
