// Package ble is the gateway's endpoint for a BLE bridge: the Bluetooth central on the gateway
// host (a BlueZ D-Bus client, a phone app, an ESP32 over USB) that owns the radio, subscribes to
// the health characteristics and hands every notification or indication it receives to the
// gateway, here. The gateway decodes it (wire/gatt), maps the device address to a platform
// device (identity.Resolver), turns the readings into a SenML pack with catalog codes and
// canonical UCUM units, and hands it to a gateway.Sink. The bridge gets its answer only once the
// Sink has the pack durably, so it can hold a notification until then and resend on failure.
//
// The wire interface (HTTP + JSON) is documented in README.md; Handler.Deliver is the same
// thing for a bridge linked into the gateway binary.
package ble

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/gatt"
)

// Config is what a Handler needs. Resolver and Sink are required.
type Config struct {
	Resolver identity.Resolver
	Sink     gateway.Sink
	Logger   *slog.Logger // nil: discard
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer

	// Location is the zone of the devices' wall-clock timestamps (the Bluetooth Date Time
	// carries none; devices are set in local time by their app or the gateway, which sits
	// where they are). nil: the gateway host's zone, time.Local.
	Location *time.Location
	// MaxAhead is how far a device timestamp may be after the receive time before the
	// device's clock is taken to be wrong and the receive time used instead; 0 means 5 min.
	// Timestamps in the past are kept: meters and scales send stored measurements late.
	MaxAhead time.Duration
	// MaxBatch bounds the notifications in one request; 0 means 1000.
	MaxBatch int
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// SinkTimeout bounds one Sink.Accept; 0 means 10 seconds.
	SinkTimeout time.Duration
}

// Notification is one GATT notification or indication as the bridge received it.
type Notification struct {
	// Address is the peripheral's 48-bit address, "C4:7C:8D:6A:12:34" (colons or hyphens).
	Address string `json:"address"`
	// Characteristic is the UUID: "2A37", "0x2A37" or "00002a37-0000-1000-8000-00805f9b34fb".
	Characteristic string `json:"characteristic"`
	// Exactly one of PayloadHex ("1e553200 2100", spaces allowed) and PayloadBase64 (standard
	// encoding, padded) holds the characteristic value as received.
	PayloadHex    string `json:"payload_hex,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	// Received is when the bridge received it, RFC 3339 with a zone; empty means now. It
	// dates readings whose characteristic carries no timestamp.
	Received string `json:"received,omitempty"`
	// CGMSessionStart is the CGM Session Start Time (0x2AAA) the bridge read, RFC 3339; CGM
	// records are dated from it. Without it the newest record of a notification is dated at
	// Received and the others by their offsets before it.
	CGMSessionStart string `json:"cgm_session_start,omitempty"`
}

// Status is the outcome for one notification.
type Status string

// The outcomes. Only Accepted and NoReading mean the bridge may forget the notification.
const (
	Accepted      Status = "accepted"       // the Sink has its pack
	NoReading     Status = "no_reading"     // valid, but nothing to forward (NaN, control solution)
	Refused       Status = "refused"        // malformed: resending will not help
	UnknownDevice Status = "unknown_device" // no platform device is mapped to the address
	Failed        Status = "failed"         // the Sink or resolver failed: send it again later
	NotAttempted  Status = "not_attempted"  // not processed because another item failed
)

// Result says what became of one notification of a request.
type Result struct {
	Index          int           `json:"index"`
	Status         Status        `json:"status"`
	Device         string        `json:"device,omitempty"`
	Characteristic string        `json:"characteristic,omitempty"` // "0x2A37 Heart Rate Measurement"
	Readings       int           `json:"readings"`
	Class          string        `json:"class,omitempty"`
	TimeSource     string        `json:"time_source,omitempty"` // device, received, cgm_session_start
	Error          string        `json:"error,omitempty"`
	class          gateway.Class // for the Sink
	pack           []byte
}

// Handler decodes notifications and hands them to the Sink. It is an http.Handler (see
// ServeHTTP) and is safe for concurrent use.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New checks cfg and builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Resolver == nil || cfg.Sink == nil {
		return nil, errors.New("ble: Config needs a Resolver and a Sink")
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.MaxAhead <= 0 {
		cfg.MaxAhead = 5 * time.Minute
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.SinkTimeout <= 0 {
		cfg.SinkTimeout = 10 * time.Second
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	return h, nil
}

// Deliver processes a batch of notifications all or nothing as far as validation goes: if any
// is malformed or from an unknown device, none is handed to the Sink and the results say
// which ones were at fault. Otherwise the packs go to the Sink in order, and a Sink failure
// stops the batch there: the results say which were accepted (the ones before) so the bridge
// resends the rest, in order. The error is nil only when every notification was accepted or
// carried no reading; it is then one of the Status values' causes, for logs.
func (h *Handler) Deliver(ctx context.Context, ns []Notification) ([]Result, error) {
	now := time.Now()
	res := make([]Result, len(ns))
	var firstErr error
	worst := Status("")
	for i, n := range ns {
		r, err := h.prepare(ctx, n, now)
		r.Index = i
		res[i] = r
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("notification %d: %w", i, err)
			}
			if rank(r.Status) > rank(worst) {
				worst = r.Status
			}
		}
	}
	if firstErr != nil {
		for i := range res {
			if res[i].Status == "" || res[i].Status == Accepted || res[i].Status == NoReading {
				res[i].Status, res[i].Error = NotAttempted, "not stored: another notification of this request was not accepted; nothing of it was"
			}
			h.metrics.count(res[i].Status)
		}
		return stripInternal(res), &DeliveryError{Status: worst, Err: firstErr}
	}
	for i := range res {
		r := &res[i]
		if r.Status == NoReading {
			h.metrics.count(r.Status)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, h.cfg.SinkTimeout)
		start := time.Now()
		err := h.cfg.Sink.Accept(sctx, r.Device, r.pack, r.class)
		cancel()
		h.metrics.sinkSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			err = fmt.Errorf("notification %d: storing readings for device %s: %w", i, r.Device, err)
			r.Status, r.Error = Failed, err.Error()
			h.metrics.count(Failed)
			for j := i + 1; j < len(res); j++ {
				res[j].Status, res[j].Error = NotAttempted, fmt.Sprintf("not stored: notification %d failed before it; send it again", i)
				h.metrics.count(NotAttempted)
			}
			return stripInternal(res), &DeliveryError{Status: Failed, Err: err}
		}
		r.Status = Accepted
		h.metrics.count(Accepted)
	}
	return stripInternal(res), nil
}

// DeliveryError is Deliver's error: the worst outcome in the batch and the first cause.
type DeliveryError struct {
	Status Status // Refused, UnknownDevice or Failed
	Err    error
}

func (e *DeliveryError) Error() string { return e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// rank orders statuses so that a batch answers with its most telling one: a malformed item
// is the bridge's bug, an unknown device a configuration matter, a failure transient.
func rank(s Status) int {
	switch s {
	case Refused:
		return 3
	case UnknownDevice:
		return 2
	case Failed:
		return 1
	}
	return 0
}

func stripInternal(res []Result) []Result {
	for i := range res {
		res[i].pack = nil
	}
	return res
}

// prepare validates, decodes, resolves and encodes one notification.
func (h *Handler) prepare(ctx context.Context, n Notification, now time.Time) (Result, error) {
	var r Result
	refuse := func(format string, args ...any) (Result, error) {
		err := fmt.Errorf(format, args...)
		r.Status, r.Error = Refused, err.Error()
		return r, err
	}
	if n.Address == "" {
		return refuse("address is missing")
	}
	addr, err := identity.NormaliseBLE(n.Address)
	if err != nil {
		return refuse("address %q is not a 48-bit BLE address like C4:7C:8D:6A:12:34", n.Address)
	}
	if n.Characteristic == "" {
		return refuse("characteristic is missing")
	}
	uuid, err := gatt.ParseUUID(n.Characteristic)
	if err != nil {
		return refuse("characteristic: %w", err)
	}
	name := gatt.Name(uuid)
	if name == "" {
		return refuse("characteristic 0x%04X: %w: this gateway decodes 0x2A37, 0x2A35, 0x2A1C, 0x2A18, 0x2AA7, 0x2A5E, 0x2A5F, 0x2A9D", uuid, gatt.ErrUnknownCharacteristic)
	}
	r.Characteristic = fmt.Sprintf("0x%04X %s", uuid, name)
	payload, err := decodePayload(n)
	if err != nil {
		return refuse("%w", err)
	}
	received := now
	if n.Received != "" {
		if received, err = time.Parse(time.RFC3339Nano, n.Received); err != nil {
			return refuse("received %q is not an RFC 3339 time with a zone, like 2026-11-24T06:15:00.123Z", n.Received)
		}
		if received.After(now.Add(time.Minute)) {
			return refuse("received %s is %s ahead of the gateway's clock", n.Received, received.Sub(now).Round(time.Second))
		}
	}
	var sessionStart time.Time
	if n.CGMSessionStart != "" {
		if sessionStart, err = time.Parse(time.RFC3339Nano, n.CGMSessionStart); err != nil {
			return refuse("cgm_session_start %q is not an RFC 3339 time with a zone", n.CGMSessionStart)
		}
	}
	v, err := gatt.Decode(uuid, payload)
	if err != nil {
		return refuse("%w", err)
	}
	m, ok := v.(gatt.Measurement)
	if !ok {
		return refuse("%s is not a measurement: the bridge reads it once after connecting and keeps it", r.Characteristic)
	}
	b, err := h.cfg.Resolver.ResolveBLE(ctx, addr)
	if errors.Is(err, identity.ErrUnknown) {
		r.Status, r.Error = UnknownDevice, err.Error()
		return r, err
	}
	if err != nil {
		err = fmt.Errorf("resolving BLE address %s: %w", addr, err)
		r.Status, r.Error = Failed, err.Error()
		return r, err
	}
	r.Device = b.Device
	rs, source := h.date(m, received, sessionStart)
	r.TimeSource = source
	if len(rs) == 0 {
		r.Status, r.Error = NoReading, "decoded, but it carries no value to forward (NaN, NRes, unsuccessful, control solution or unusable status)"
		return r, nil
	}
	r.class = classify(m)
	r.Class = r.class.String()
	if r.pack, r.Readings, err = encode(b.Device, rs); err != nil {
		r.Status, r.Error = Refused, err.Error()
		return r, err
	}
	return r, nil
}

// decodePayload reads the payload from exactly one of its encodings.
func decodePayload(n Notification) ([]byte, error) {
	switch {
	case n.PayloadHex != "" && n.PayloadBase64 != "":
		return nil, errors.New("give payload_hex or payload_base64, not both")
	case n.PayloadHex != "":
		s := strings.Join(strings.Fields(n.PayloadHex), "")
		p, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("payload_hex is not hexadecimal bytes: %w", err)
		}
		return p, nil
	case n.PayloadBase64 != "":
		p, err := base64.StdEncoding.DecodeString(n.PayloadBase64)
		if err != nil {
			return nil, fmt.Errorf("payload_base64 is not standard base64: %w", err)
		}
		return p, nil
	}
	return nil, errors.New("payload is missing: give payload_hex or payload_base64")
}

// dated is one reading with the time it is filed under.
type dated struct {
	gatt.Reading
	at time.Time
}

// date gives every reading of m its time: the device's timestamp where the characteristic
// carries a usable one, else the receive time; and says which it used.
func (h *Handler) date(m gatt.Measurement, received, sessionStart time.Time) ([]dated, string) {
	at, source := received, "received"
	device := func(dt *gatt.DateTime) {
		if dt == nil {
			return
		}
		t, ok := dt.Time(h.cfg.Location)
		// A timestamp after the notification arrived means the device's clock is wrong (or
		// unset and counting from its epoch): the receive time is then the better guess.
		if ok && plausible(t, received, h.cfg.MaxAhead) {
			at, source = t, "device"
		}
	}
	switch v := m.(type) {
	case gatt.BloodPressure:
		device(v.Timestamp)
	case gatt.Temperature:
		device(v.Timestamp)
	case gatt.Weight:
		device(v.Timestamp)
	case gatt.PLXSpotCheck:
		if !v.DeviceClockNotSet {
			device(v.Timestamp)
		}
	case gatt.Glucose:
		if t, err := time.ParseInLocation("2006-01-02T15:04:05", v.Time, h.cfg.Location); err == nil && plausible(t, received, h.cfg.MaxAhead) {
			at, source = t, "device"
		}
	case gatt.CGM:
		return dateCGM(v, received, sessionStart)
	}
	rs := m.Readings()
	out := make([]dated, len(rs))
	for i, r := range rs {
		out[i] = dated{r, at.Truncate(time.Millisecond)}
	}
	return out, source
}

// year2000 is where ingest stops believing device clocks: earlier means the clock was not set.
var year2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// plausible reports whether a device timestamp can be believed given when it arrived.
func plausible(t, received time.Time, maxAhead time.Duration) bool {
	return !t.Before(year2000) && !t.After(received.Add(maxAhead))
}

// dateCGM dates each record from the session start, or, without one, by its offset before
// the newest record, which is taken to be measured when it was received.
func dateCGM(v gatt.CGM, received, sessionStart time.Time) ([]dated, string) {
	var newest uint16
	for _, rec := range v.Records {
		newest = max(newest, rec.TimeOffset)
	}
	var out []dated
	source := "received"
	if !sessionStart.IsZero() {
		source = "cgm_session_start"
	}
	for _, rec := range v.Records {
		at := received.Add(-time.Duration(newest-rec.TimeOffset) * time.Minute)
		if !sessionStart.IsZero() {
			at = sessionStart.Add(time.Duration(rec.TimeOffset) * time.Minute)
		}
		for _, r := range (gatt.CGM{Records: []gatt.CGMRecord{rec}}).Readings() {
			out = append(out, dated{r, at.Truncate(time.Millisecond)})
		}
	}
	return out, source
}

// classify says Alarm when the device itself flags the measurement as abnormal, in the
// characteristics that carry such status; signal-quality bits (cuff fit, low perfusion) do
// not make a reading abnormal.
func classify(m gatt.Measurement) gateway.Class {
	switch v := m.(type) {
	case gatt.BloodPressure:
		if s := v.StatusBits; s != nil && (s.PulseRateTooHigh || s.PulseRateTooLow || s.IrregularPulse) {
			return gateway.Alarm
		}
	case gatt.Glucose:
		if s := v.StatusBits; s != nil && (s.ResultTooHigh || s.ResultTooLow) {
			return gateway.Alarm
		}
	case gatt.CGM:
		for _, rec := range v.Records {
			if s := rec.StatusBits; s != nil && (s.ResultBelowPatientLow || s.ResultAbovePatientHigh ||
				s.ResultBelowHypo || s.ResultAboveHyper || s.RateOfDecreaseExceeded || s.RateOfIncreaseExceeded ||
				s.ResultBelowDeviceCanProcess || s.ResultAboveDeviceCanProcess) {
				return gateway.Alarm
			}
		}
	}
	return gateway.Spot
}

// encode writes the readings as one SenML JSON pack (gateway.EncodePack).
func encode(device string, rs []dated) ([]byte, int, error) {
	gr := make([]gateway.Reading, len(rs))
	for i, r := range rs {
		gr[i] = gateway.Reading{Code: r.Code, Unit: r.Unit, Value: r.Value, At: r.at}
	}
	return gateway.EncodePack(device, gr)
}
