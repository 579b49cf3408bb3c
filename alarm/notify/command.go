package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iomt/iomt/alarm"
)

// Ack is a device's answer to a command.
type Ack struct {
	Command string    `json:"command"` // the Command.ID it answers
	Device  string    `json:"device,omitempty"`
	Status  string    `json:"status"` // "ok" (accepted, doing it) or "rejected"
	Detail  string    `json:"detail,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// OK reports whether the device accepted the command.
func (a Ack) OK() bool { return a.Status == "ok" }

// Commander sends a command to a device and waits for its acknowledgement.
type Commander interface {
	SendCommand(ctx context.Context, device string, cmd alarm.Command) (Ack, error)
}

// MQTTCommander sends commands as JSON on the device's command topic, through Publish (which
// (*mqtt.Broker).SendCommand fits), and waits for the device's Ack, which whoever receives it
// hands to HandleAck. Commands are idempotent by ID: a device that sees the same ID twice acks
// again without acting twice.
type MQTTCommander struct {
	Tenant  string
	Publish func(tenant, device string, payload []byte) error
	Timeout time.Duration // how long to wait for the ack; default 30s

	mu      sync.Mutex
	waiting map[string]chan Ack // by command ID
}

// SendCommand publishes cmd to the device and waits for its ack.
func (m *MQTTCommander) SendCommand(ctx context.Context, device string, cmd alarm.Command) (Ack, error) {
	if cmd.ID == "" {
		return Ack{}, errors.New("command: no ID")
	}
	cmd.Device = device
	payload, err := json.Marshal(cmd)
	if err != nil {
		return Ack{}, fmt.Errorf("command %s: encode: %w", cmd.ID, err)
	}
	ch := make(chan Ack, 1)
	m.mu.Lock()
	if m.waiting == nil {
		m.waiting = map[string]chan Ack{}
	}
	m.waiting[cmd.ID] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waiting, cmd.ID)
		m.mu.Unlock()
	}()
	if err := m.Publish(m.Tenant, device, payload); err != nil {
		return Ack{}, fmt.Errorf("command %s to %s: publish: %w", cmd.ID, device, err)
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if !a.OK() {
			return a, fmt.Errorf("command %s: device %s rejected it: %s", cmd.ID, device, a.Detail)
		}
		return a, nil
	case <-t.C:
		return Ack{}, fmt.Errorf("command %s: no acknowledgement from device %s within %s", cmd.ID, device, timeout)
	case <-ctx.Done():
		return Ack{}, fmt.Errorf("command %s to %s: %w", cmd.ID, device, ctx.Err())
	}
}

// HandleAck takes a device's acknowledgement (JSON Ack) and wakes the sender. An ack from a
// device other than the one commanded, or for no pending command, is refused.
func (m *MQTTCommander) HandleAck(device string, payload []byte) error {
	var a Ack
	if err := json.Unmarshal(payload, &a); err != nil {
		return fmt.Errorf("command ack from %s: %w", device, err)
	}
	if a.Device != "" && a.Device != device {
		return fmt.Errorf("command ack from %s names device %s", device, a.Device)
	}
	a.Device = device
	m.mu.Lock()
	ch := m.waiting[a.Command]
	m.mu.Unlock()
	if ch == nil {
		return fmt.Errorf("command ack from %s: no pending command %q", device, a.Command)
	}
	select {
	case ch <- a:
	default: // a repeated ack
	}
	return nil
}

// DeviceNotifier carries out DeviceCmd deliveries: it finds the patient's device of the
// command's target kind and sends the command through a Commander.
type DeviceNotifier struct {
	Commander Commander
	// Resolve finds the patient's device of a kind (e.g. from the registry's bound devices).
	Resolve func(ctx context.Context, patient, kind string) (string, error)
}

// Notify sends the delivery's command and returns an error unless the device acknowledged it.
func (n *DeviceNotifier) Notify(ctx context.Context, d alarm.Delivery, a alarm.Alarm) error {
	if d.Command == nil {
		return errors.New("device delivery without a command")
	}
	cmd := *d.Command
	dev := cmd.Device
	if dev == "" {
		var err error
		if dev, err = n.Resolve(ctx, cmd.Patient, cmd.Target); err != nil {
			return fmt.Errorf("command %s: no %s for patient %s: %w", cmd.ID, cmd.Target, cmd.Patient, err)
		}
	}
	_, err := n.Commander.SendCommand(ctx, dev, cmd)
	return err
}
