package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/ingest/mqtt"
)

// DeviceChange tells the node that a device's access changed, so that what other parts hold
// of it goes too: with End, its live MQTT sessions end on every node (credentials rotated or
// revoked, device disabled or deleted); without, only gateways' cached view of it (its gateway
// changed).
type DeviceChange struct {
	Device string
	Reason string
	End    bool
}

// deviceView is a device as the API shows it: with whether its credentials are revoked (the
// digests themselves never leave the server).
type deviceView struct {
	iomt.Device
	Revoked bool `json:"revoked,omitempty"`
}

func viewDevice(d iomt.Device) deviceView { return deviceView{Device: d, Revoked: ingest.Revoked(d)} }

// tenantDevice reads device id of the API's tenant; a device of another tenant is not found.
func (s *Server) tenantDevice(ctx context.Context, id string) (iomt.Device, error) {
	d, err := s.Store.Device(ctx, id)
	if err == nil && d.Tenant != iomt.DefaultTenant {
		err = fmt.Errorf("device %q of another tenant: %w", id, iomt.ErrNotFound)
	}
	return d, err
}

// deviceChanged tells the node (when it listens) that a device's access changed.
func (s *Server) deviceChanged(ctx context.Context, c DeviceChange) {
	if s.DeviceChanged != nil {
		s.DeviceChanged(ctx, c)
	}
}

// checkGateway returns why device d may not sit behind gateway gw (a device id), or "".
func (s *Server) checkGateway(ctx context.Context, d iomt.Device, gw string) (string, error) {
	if gw == "" {
		return "", nil
	}
	if d.Kind == mqtt.GatewayKind {
		return fmt.Sprintf(`"gateway": device %s is itself a gateway`, d.ID), nil
	}
	g, err := s.tenantDevice(ctx, gw)
	if errors.Is(err, iomt.ErrNotFound) {
		return fmt.Sprintf(`"gateway": device %q does not exist`, gw), nil
	}
	if err != nil {
		return "", err
	}
	if g.Kind != mqtt.GatewayKind {
		return fmt.Sprintf(`"gateway": device %s is a %s, not a gateway`, gw, g.Kind), nil
	}
	return "", nil
}

// deviceCredentials answers with a device and its new credentials (shown this once).
func (s *Server) deviceCredentials(d iomt.Device, creds ingest.Credentials) deviceOut {
	return deviceOut{Device: d, Token: creds.Token, MQTT: &mqttCreds{
		Host: s.MQTTAddr, Username: d.ID, Password: creds.MQTTPassword,
		Topic:        mqtt.DataTopic(d.Tenant, d.ID),
		CommandTopic: mqtt.CommandTopic(d.Tenant, d.ID), AckTopic: mqtt.AckTopic(d.Tenant, d.ID),
	}}
}

// rotateCredentials issues a device a new MQTT password and HTTP token, shown once; the old
// ones stop working at once (authentication reads the registry every time) and the device's
// live sessions end, on every node.
func (s *Server) rotateCredentials(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	noteAudit(r, "", slog.String("device", id)) // refusals too name the device
	d, err := s.tenantDevice(r.Context(), id)
	if err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	creds, err := ingest.NewCredentials(&d)
	if err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	if err := s.Store.SetDeviceCredentials(r.Context(), id, d.MQTTPasswordHash, d.TokenHash); err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	noteAudit(r, d.Patient)
	s.deviceChanged(r.Context(), DeviceChange{Device: id, Reason: "credentials rotated", End: true})
	writeJSON(w, http.StatusOK, s.deviceCredentials(d, creds))
}

// revokeCredentials clears a device's credentials: it cannot authenticate (not even with a
// client certificate) until they are rotated, and its live sessions end.
func (s *Server) revokeCredentials(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	noteAudit(r, "", slog.String("device", id)) // refusals too name the device
	d, err := s.tenantDevice(r.Context(), id)
	if err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	if err := s.Store.SetDeviceCredentials(r.Context(), id, nil, nil); err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	d.MQTTPasswordHash, d.TokenHash = nil, nil
	noteAudit(r, d.Patient)
	s.deviceChanged(r.Context(), DeviceChange{Device: id, Reason: "credentials revoked", End: true})
	writeJSON(w, http.StatusOK, viewDevice(d))
}

// devicePatch changes a device's access: a field present replaces the record's, an absent (or
// null) one keeps it.
type devicePatch struct {
	Disabled *bool `json:"disabled"`
	// Gateway is the id of the gateway the device sits behind; "" for none.
	Gateway *string `json:"gateway"`
}

// updateDevice disables or enables a device and registers it behind a gateway. Disabling ends
// its live sessions; a new gateway takes effect from the gateways' next publish.
func (s *Server) updateDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	noteAudit(r, "", slog.String("device", id)) // refusals too name the device
	var in devicePatch
	if !s.decodeBody(w, r, &in) {
		return
	}
	d, err := s.tenantDevice(r.Context(), id)
	if err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	var changed []string
	var attrs []slog.Attr
	if in.Gateway != nil && *in.Gateway != d.Gateway {
		gw := strings.TrimSpace(*in.Gateway)
		why, err := s.checkGateway(r.Context(), d, gw)
		if err != nil {
			s.storeError(w, r, "gateway", err)
			return
		}
		if why != "" {
			writeProblem(w, r, http.StatusUnprocessableEntity, why)
			return
		}
		if err := s.Store.SetDeviceGateway(r.Context(), id, gw); err != nil {
			s.storeError(w, r, "device "+id, err)
			return
		}
		attrs = append(attrs, slog.String("gatewayFrom", d.Gateway), slog.String("gatewayTo", gw))
		changed, d.Gateway = append(changed, "gateway"), gw
		s.deviceChanged(r.Context(), DeviceChange{Device: id, Reason: "gateway changed"})
	}
	if in.Disabled != nil && *in.Disabled != d.Disabled {
		if err := s.Store.SetDeviceDisabled(r.Context(), id, *in.Disabled); err != nil {
			s.storeError(w, r, "device "+id, err)
			return
		}
		attrs = append(attrs, slog.Bool("disabled", *in.Disabled))
		changed, d.Disabled = append(changed, "disabled"), *in.Disabled
		if d.Disabled {
			s.deviceChanged(r.Context(), DeviceChange{Device: id, Reason: "device disabled", End: true})
		}
	}
	noteAudit(r, d.Patient, append(attrs, slog.String("changed", strings.Join(changed, ",")))...)
	writeJSON(w, http.StatusOK, viewDevice(d))
}

// deleteDevice forgets a device and its credentials; its live sessions end. The readings it
// sent stay, readable by patient.
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	noteAudit(r, "", slog.String("device", id)) // refusals too name the device
	d, err := s.tenantDevice(r.Context(), id)
	if err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	if err := s.Store.DeleteDevice(r.Context(), id); err != nil {
		s.storeError(w, r, "device "+id, err)
		return
	}
	noteAudit(r, d.Patient, slog.String("kind", d.Kind))
	s.deviceChanged(r.Context(), DeviceChange{Device: id, Reason: "device deleted", End: true})
	w.WriteHeader(http.StatusNoContent)
}
