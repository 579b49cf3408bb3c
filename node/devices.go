package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/api"
)

// eventDeviceAccess tells every node's broker that a device's access changed (credentials
// rotated or revoked, device disabled or deleted, gateway changed), so that the device's live
// MQTT sessions end wherever they are. Events are at most once: a notice lost between nodes is
// made good by the broker's periodic recheck of its sessions (mqtt.Options.RecheckInterval).
const eventDeviceAccess = "device-access"

type deviceAccess struct {
	Node   string `json:"node"` // the node that changed it, which has acted already
	Device string `json:"device"`
	Reason string `json:"reason"`
	End    bool   `json:"end"`
}

// deviceChanged acts on this node's broker at once and tells the other nodes.
func (n *Node) deviceChanged(events iomt.Events) func(context.Context, api.DeviceChange) {
	return func(ctx context.Context, c api.DeviceChange) {
		n.applyDeviceChange(c)
		data, err := json.Marshal(deviceAccess{Node: n.cfg.NodeID, Device: c.Device, Reason: c.Reason, End: c.End})
		if err == nil {
			err = events.PublishEvent(context.WithoutCancel(ctx), iomt.Event{Kind: eventDeviceAccess, Time: time.Now(), Data: data})
		}
		if err != nil {
			n.log.Warn("device change not told to other nodes (their recheck will catch it)", "device", c.Device, "reason", c.Reason, "err", err)
		}
	}
}

// onDeviceAccess applies another node's device change to this node's broker.
func (n *Node) onDeviceAccess(e iomt.Event) {
	var a deviceAccess
	if err := json.Unmarshal(e.Data, &a); err != nil || a.Node == n.cfg.NodeID {
		return
	}
	n.applyDeviceChange(api.DeviceChange{Device: a.Device, Reason: a.Reason, End: a.End})
}

func (n *Node) applyDeviceChange(c api.DeviceChange) {
	if c.End {
		n.broker.Revoke(c.Device, c.Reason)
		return
	}
	n.broker.Forget(c.Device)
}
