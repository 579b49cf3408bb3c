package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt"
)

// A command the server sends reaches the device subscribed to its command topic.
func TestCommandReachesDevice(t *testing.T) {
	e := start(t)
	_, dev := e.ward()
	got := make(chan []byte, 1)
	conn, err := net.Dial("tcp", e.n.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: dev.MQTT.Username,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Topic == dev.MQTT.CommandTopic {
				got <- pr.Packet.Payload
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: dev.MQTT.Username,
		Username: dev.MQTT.Username, UsernameFlag: true, Password: []byte(dev.MQTT.Password), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: dev.MQTT.CommandTopic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.n.SendCommand(iomt.DefaultTenant, dev.ID, []byte(`{"command":"measure-bp"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != `{"command":"measure-bp"}` {
			t.Fatalf("device got %q", p)
		}
	case <-ctx.Done():
		t.Fatal("the command did not reach the device")
	}
}
