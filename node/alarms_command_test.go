package node_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/node"
)

const commandRulesYAML = `version: 1
rules:
  - id: spo2-low
    kind: threshold
    code: 59408-5
    below: [{limit: 90, priority: medium}]
    delay: 0s
    command: {name: measure-bp, target: bp-monitor}
`

// A rule's command reaches the patient's blood-pressure monitor on its command topic, the
// monitor acknowledges it on its ack topic, and the node counts the delivery as done; a
// monitor that never answers makes it fail after the command timeout.
func TestAlarmCommandAcknowledgedByDevice(t *testing.T) {
	for _, answer := range []bool{true, false} {
		t.Run("answers="+strconv.FormatBool(answer), func(t *testing.T) {
			rules := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(rules, []byte(commandRulesYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			// The device that answers has ample time to; the silent one is given up on quickly.
			timeout := 10 * time.Second
			if !answer {
				timeout = time.Second
			}
			e := startWith(t, func(c *node.Config) {
				c.Alarms = node.AlarmsConfig{RulesFile: rules, CommandTimeout: timeout}
			})
			patient, dev := e.ward()
			var cuff device
			if c := e.call("POST", "/api/v1/devices", adminToken, map[string]string{"patient": patient, "kind": "bp-monitor"}, &cuff); c != 201 {
				t.Fatalf("create bp monitor: %d", c)
			}
			got := make(chan []byte, 4)
			conn, err := net.Dial("tcp", e.n.MQTTAddr())
			if err != nil {
				t.Fatal(err)
			}
			c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: cuff.MQTT.Username,
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
					got <- pr.Packet.Payload
					return true, nil
				}}})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: cuff.MQTT.Username,
				Username: cuff.MQTT.Username, UsernameFlag: true, Password: []byte(cuff.MQTT.Password), PasswordFlag: true}); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: cuff.MQTT.CommandTopic, QoS: 1}}}); err != nil {
				t.Fatal(err)
			}

			body := []byte(`[{"bn":"urn:dev:id:` + dev.ID + `:","n":"59408-5","u":"%","v":87}]`)
			if code := e.call("POST", "/api/v1/ingest", dev.Token, body, nil); code != 200 {
				t.Fatalf("ingest: %d", code)
			}
			var cmd struct{ ID, Name, Patient, Target, Alarm string }
			select {
			case p := <-got:
				if err := json.Unmarshal(p, &cmd); err != nil || cmd.Name != "measure-bp" || cmd.Patient != patient || cmd.ID == "" || cmd.Alarm == "" {
					t.Fatalf("command %q (%v)", p, err)
				}
			case <-ctx.Done():
				t.Fatal("no command reached the bp monitor")
			}
			if answer {
				ack := []byte(`{"command":"` + cmd.ID + `","status":"ok"}`)
				ackTopic := strings.TrimSuffix(cuff.MQTT.CommandTopic, "/cmd") + "/ack"
				if ackTopic != mqtt.AckTopic("default", cuff.ID) {
					t.Fatalf("ack topic %s, want %s", ackTopic, mqtt.AckTopic("default", cuff.ID))
				}
				if _, err := c.Publish(ctx, &paho.Publish{Topic: ackTopic, QoS: 1, Payload: ack}); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
			want := `iomt_alarm_deliveries_total{channel="device",outcome="ok"} 1`
			if !answer {
				want = `iomt_alarm_deliveries_total{channel="device",outcome="failed"} 1`
			}
			e.waitMetric(t, want, 10*time.Second)
		})
	}
}
