package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iomt/iomt/sensing"
)

// Device commands, as the server's alarm rules send them (alarm.Command) on
// iomt/v1/{tenant}/devices/{device}/cmd and expect answered (notify.Ack) on .../ack.

// commandKind is the kind of device that can carry out a named command. "measure" asks any
// device that measures on demand for a measurement.
func commandKind(name string) (string, bool) {
	switch name {
	case "measure-bp":
		return sensing.BPMonitor, true
	case "measure-glucose":
		return sensing.Glucometer, true
	case "measure-temperature":
		return sensing.Thermometer, true
	case "measure-weight":
		return sensing.Scale, true
	}
	return "", false
}

// knownCommands lists the commands a simulated device understands, for refusals.
const knownCommands = "measure, measure-bp, measure-glucose, measure-temperature, measure-weight"

// commandMeasure is the generic on-demand measurement, for whatever the device measures.
const commandMeasure = "measure"

// Ack statuses the server understands (notify.Ack).
const (
	ackOK       = "ok"
	ackRejected = "rejected"
)

// ackMeta marks a publish as a command acknowledgement rather than a pack of readings, so that
// its PUBACK is not counted as one.
const ackMeta = -1

// rememberedCommands is how many command IDs a device keeps to recognise a repeated command.
// The server repeats a command only while it waits for the ack (seconds), so a few suffice.
const rememberedCommands = 64

// command is what the server sends (alarm.Command); Args are not used by any command yet.
type command struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Device string `json:"device"`
}

// commandAck is the device's answer (notify.Ack).
type commandAck struct {
	Command string    `json:"command"`
	Status  string    `json:"status"`
	Detail  string    `json:"detail,omitempty"`
	Time    time.Time `json:"time"`
}

// inbound is a message the server sent to one of a bed's devices.
type inbound struct {
	dev     *device
	payload []byte
}

// commandTopics derives a device's command and ack topics from its data topic
// (iomt/v1/{tenant}/devices/{device}/senml), which is all a beds file records.
func commandTopics(data string) (cmd, ack string, ok bool) {
	base, ok := strings.CutSuffix(data, "/senml")
	if !ok || base == "" {
		return "", "", false
	}
	return base + "/cmd", base + "/ack", true
}

// onMessage runs on the client's reader: it must not block, so the command is queued for the
// bed's goroutine, which owns the patient model.
func (d *device) onMessage(topic string, payload []byte) {
	if topic != d.cmdTopic || d.inbox == nil {
		d.log.Warn("sim message on an unexpected topic", "device", d.ID, "topic", topic)
		return
	}
	select {
	case d.inbox <- inbound{dev: d, payload: payload}:
	default:
		// The server gives up on the command after its timeout; nothing better to do here.
		d.log.Warn("sim command dropped: too many waiting", "device", d.ID)
	}
}

// handleCommand carries out one command on the bed's patient (at simulated time at) and
// publishes the acknowledgement. A command ID seen before is acknowledged again, as it was the
// first time, without acting twice: QoS 1 delivers at least once.
func handleCommand(ctx context.Context, p *sensing.Patient, at time.Time, m inbound) error {
	d := m.dev
	var c command
	if err := json.Unmarshal(m.payload, &c); err != nil || c.ID == "" {
		// Without an ID there is no way to answer; the server times the command out.
		d.log.Warn("sim command unreadable", "device", d.ID, "err", err, "payload", truncate(m.payload, 200))
		d.st.CmdRejected.Add(1)
		return nil
	}
	a, seen := d.done[c.ID]
	if seen {
		d.st.CmdRepeated.Add(1)
		d.log.Info("sim command repeated; acknowledged again", "device", d.ID, "command", c.ID, "name", c.Name, "status", a.Status)
	} else {
		a = commandAck{Command: c.ID, Status: ackOK, Time: time.Now().UTC()}
		if err := d.carryOut(p, at, c); err != nil {
			a.Status, a.Detail = ackRejected, err.Error()
			d.st.CmdRejected.Add(1)
		} else {
			a.Detail = "measurement started"
			d.st.Commands.Add(1)
		}
		d.remember(c.ID, a)
		d.log.Info("sim command", "device", d.ID, "command", c.ID, "name", c.Name, "status", a.Status, "detail", a.Detail)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("device %s: encode ack of command %s: %w", d.ID, c.ID, err)
	}
	if err := d.c.Publish(ctx, d.ackTopic, b, ackMeta); err != nil {
		return fmt.Errorf("device %s: ack command %s: %w", d.ID, c.ID, err)
	}
	return nil
}

// carryOut does what c asks of the device, or says why it cannot.
func (d *device) carryOut(p *sensing.Patient, at time.Time, c command) error {
	if c.Device != "" && c.Device != d.ID {
		return fmt.Errorf("command addressed to device %s, this is %s", c.Device, d.ID)
	}
	kind, known := commandKind(c.Name)
	switch {
	case c.Name == commandMeasure:
		kind = d.Kind
	case !known:
		return fmt.Errorf("unknown command %q (a simulated device knows %s)", c.Name, knownCommands)
	case kind != d.Kind:
		return fmt.Errorf("a %s cannot %s: that takes a %s", d.Kind, c.Name, kind)
	}
	// The model refuses devices that do not measure on demand (an ECG patch streams) and
	// devices the patient does not wear.
	if err := p.Measure(kind, at); err != nil {
		return fmt.Errorf("cannot %s: %w", c.Name, err)
	}
	return nil
}

// remember records the answer to a command, forgetting the oldest beyond rememberedCommands.
func (d *device) remember(id string, a commandAck) {
	if d.done == nil {
		d.done = map[string]commandAck{}
	}
	d.done[id] = a
	d.doneOrder = append(d.doneOrder, id)
	if len(d.doneOrder) > rememberedCommands {
		delete(d.done, d.doneOrder[0])
		d.doneOrder = slices.Delete(d.doneOrder, 0, 1)
	}
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
