// Package local takes SenML packs (RFC 8428, JSON or CBOR) from constrained devices on the
// gateway's network, over HTTP (POST) and CoAP (POST, RFC 7252), maps the name the device gives
// itself to a platform device (identity.LocalResolver), checks every record against the codes
// catalog and hands a normalised pack to a gateway.Sink. The device gets its success answer
// (HTTP 204, CoAP 2.04 Changed) only once the Sink has the pack durably.
//
// The gateway checks what the cloud's ingest would refuse (unknown code, wrong unit, a value
// outside what is physically possible, a time before 2000 or ahead of the gateway's clock)
// because a pack acknowledged here and refused upstream would be lost without the device
// ever knowing: here it still can be told.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/senml"
)

// Config is what an Adapter needs. Resolver and Sink are required.
type Config struct {
	Resolver identity.LocalResolver
	Sink     gateway.Sink
	Catalog  *codes.Catalog // nil: codes.New()
	Logger   *slog.Logger   // nil: discard
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer

	// MaxBodyBytes bounds one pack over HTTP; 0 means 1 MiB. CoAP packs are bounded by the
	// CoAP server's MaxMessageSize (64 KiB; blockwise transfers reassemble up to it).
	MaxBodyBytes int64
	// MaxRecords bounds the records of one pack; 0 means senml.DefaultMaxRecords.
	MaxRecords int
	// MaxAhead is how far a reading may be ahead of the gateway's clock; 0 means 5 minutes.
	MaxAhead time.Duration
	// SinkTimeout bounds one Sink.Accept; 0 means 10 seconds.
	SinkTimeout time.Duration
}

// Format is the encoding of a pack.
type Format uint8

// The SenML representations the adapter reads.
const (
	JSON Format = iota + 1 // application/senml+json, CoAP content-format 110
	CBOR                   // application/senml+cbor, CoAP content-format 112
)

func (f Format) String() string {
	switch f {
	case JSON:
		return "application/senml+json"
	case CBOR:
		return "application/senml+cbor"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Kind says what went wrong with a pack, and so what the transport answers.
type Kind uint8

// The kinds of refusal.
const (
	BadRequest    Kind = iota + 1 // the pack is malformed or its readings invalid: 400 / 4.00
	UnknownDevice                 // the name maps to no platform device: 404 / 4.04
	Unavailable                   // the Sink or resolver failed; send again later: 503 / 5.03
)

// Error is a refusal of a pack with its kind and reason.
type Error struct {
	Kind   Kind
	Reason string
	Err    error // underlying cause, if any
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// Result says what became of an accepted pack.
type Result struct {
	Device   string        // platform device
	Name     string        // the local name it was resolved from
	Readings int           // records handed to the Sink
	Class    gateway.Class // Waveform when every reading is a waveform sample, else Spot
}

// Adapter turns local SenML packs into Sink packs. It is safe for concurrent use; HTTPHandler
// and ServeCoAP put transports in front of Submit.
type Adapter struct {
	cfg     Config
	cat     *codes.Catalog
	log     *slog.Logger
	dec     senml.DecodeOptions
	metrics *metrics
}

// New checks cfg and builds an Adapter.
func New(cfg Config) (*Adapter, error) {
	if cfg.Resolver == nil || cfg.Sink == nil {
		return nil, errors.New("local: Config needs a Resolver and a Sink")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxAhead <= 0 {
		cfg.MaxAhead = 5 * time.Minute
	}
	if cfg.SinkTimeout <= 0 {
		cfg.SinkTimeout = 10 * time.Second
	}
	a := &Adapter{cfg: cfg, cat: cfg.Catalog, log: cfg.Logger, dec: senml.DecodeOptions{MaxRecords: cfg.MaxRecords}}
	if a.cat == nil {
		a.cat = codes.New()
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	return a, nil
}

// Submit decodes one pack, resolves its device and hands it to the Sink. name is the device
// name the transport gave (the URL's last segment), or "" to take it from the records' base
// name. Relative SenML times are resolved against received. The error is an *Error.
func (a *Adapter) Submit(ctx context.Context, transport, name string, format Format, body []byte, received time.Time) (Result, error) {
	res, err := a.submit(ctx, name, format, body, received)
	outcome := "accepted"
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Kind: Unavailable, Reason: err.Error(), Err: err}
			err = e
		}
		outcome = map[Kind]string{BadRequest: "bad_request", UnknownDevice: "unknown_device", Unavailable: "unavailable"}[e.Kind]
		a.log.Warn("SenML pack not accepted", "transport", transport, "name", name, "device", res.Device, "err", err)
	} else {
		a.log.Debug("SenML pack accepted", "transport", transport, "name", res.Name, "device", res.Device, "readings", res.Readings, "class", res.Class)
	}
	a.metrics.packs.WithLabelValues(transport, outcome).Inc()
	return res, err
}

func (a *Adapter) submit(ctx context.Context, name string, format Format, body []byte, received time.Time) (Result, error) {
	var res Result
	bad := func(format string, args ...any) (Result, error) {
		return res, &Error{Kind: BadRequest, Reason: fmt.Sprintf(format, args...)}
	}
	var (
		pack senml.Pack
		err  error
	)
	switch format {
	case JSON:
		pack, err = a.dec.DecodeJSON(body)
	case CBOR:
		pack, err = a.dec.DecodeCBOR(body)
	default:
		return bad("unsupported format %s", format)
	}
	if err != nil {
		return res, &Error{Kind: BadRequest, Reason: err.Error(), Err: err}
	}
	recs, err := pack.Resolve(received)
	if err != nil {
		return res, &Error{Kind: BadRequest, Reason: err.Error(), Err: err}
	}
	if len(recs) == 0 {
		return bad("the pack holds only base fields, no reading")
	}
	out, local, err := a.normalise(recs, name, received)
	if err != nil {
		return res, err
	}
	res.Name = local
	b, err := a.cfg.Resolver.ResolveLocal(ctx, local)
	switch {
	case errors.Is(err, identity.ErrUnknown):
		return res, &Error{Kind: UnknownDevice, Reason: err.Error(), Err: err}
	case errors.Is(err, identity.ErrBadValue):
		return res, &Error{Kind: BadRequest, Reason: err.Error(), Err: err}
	case err != nil:
		return res, &Error{Kind: Unavailable, Reason: fmt.Sprintf("resolving local device %q: %v", local, err), Err: err}
	}
	res.Device = b.Device
	res.Class = gateway.Waveform
	for _, r := range out {
		if r.kind != codes.Waveform {
			// A spot reading travelling with waveform samples must not be evicted with them.
			res.Class = gateway.Spot
			break
		}
	}
	data, err := encode(b.Device, out)
	if err != nil {
		return res, &Error{Kind: BadRequest, Reason: err.Error(), Err: err}
	}
	sctx, cancel := context.WithTimeout(ctx, a.cfg.SinkTimeout)
	defer cancel()
	start := time.Now()
	err = a.cfg.Sink.Accept(sctx, b.Device, data, res.Class)
	a.metrics.sinkSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return res, &Error{Kind: Unavailable, Reason: fmt.Sprintf("storing readings for device %s: %v", b.Device, err), Err: err}
	}
	res.Readings = len(out)
	return res, nil
}

// reading is a checked record in catalog terms.
type reading struct {
	code  string
	unit  string
	kind  codes.Kind
	value float64
	ms    int64
}

// year2000 is where ingest stops believing device clocks: earlier means the clock was not set.
var year2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// normalise checks every record and returns the readings and the local device name: the given
// one, or the prefix the records' names share (base name without its trailing ':' or '/').
// Records naming two devices are refused either way.
func (a *Adapter) normalise(recs []senml.Resolved, name string, received time.Time) ([]reading, string, error) {
	bad := func(r senml.Resolved, format string, args ...any) error {
		return &Error{Kind: BadRequest, Reason: fmt.Sprintf("record %d (%q): %s", r.Index, r.Name, fmt.Sprintf(format, args...))}
	}
	latest := received.Add(a.cfg.MaxAhead).UnixMilli()
	out := make([]reading, 0, len(recs))
	type key struct {
		code string
		ms   int64
	}
	seen := make(map[key]struct{}, len(recs))
	var (
		first    string // the device the first named record gives
		lastName string
		lastCode codes.Code
		lastOK   bool
	)
	for i, r := range recs {
		// The code is what follows the last ':' or '/', as the cloud's ingest reads it; what
		// precedes it names the device.
		j := strings.LastIndexAny(r.Name, ":/")
		prefix, codeName := "", r.Name
		if j >= 0 {
			prefix, codeName = r.Name[:j], r.Name[j+1:]
		}
		// One pack, one device, even when the URL names it: a pack mixing devices would file
		// one device's readings under another.
		switch {
		case prefix == "" && name == "":
			return nil, "", bad(r, "the name says no device: give a base name such as \"urn:dev:mac:0024befffe804ff1:\" or post to /senml/{device name}")
		case prefix == "":
		case first == "":
			first = prefix
		case prefix != first:
			return nil, "", bad(r, "names device %q but the pack began with %q: send one pack per device", prefix, first)
		}
		if i == 0 || r.Name != lastName {
			lastCode, lastOK = a.cat.Lookup(codeName)
			lastName = r.Name
		}
		code := lastCode
		if !lastOK {
			return nil, "", bad(r, "unknown code %q (use a LOINC code, an MDC reference id or an alias from the codes catalog)", codeName)
		}
		if code.Kind == codes.Panel {
			return nil, "", bad(r, "%s is a panel without a value of its own: send its components (%s)", code.Display, strings.Join(code.Components, ", "))
		}
		var v float64
		switch {
		case r.Value != nil:
			v = *r.Value
		case r.BoolValue != nil && code.Kind == codes.Event:
			if *r.BoolValue {
				v = 1
			}
		default:
			return nil, "", bad(r, "no numeric value (v) for %s", code.Display)
		}
		if r.Unit != "" && r.Unit != code.Unit {
			var err error
			if v, err = a.cat.Convert(code, v, r.Unit); err != nil {
				return nil, "", bad(r, "%v", err)
			}
		}
		if math.IsNaN(v) || v < code.Min || v > code.Max {
			return nil, "", bad(r, "value %g %s is outside the possible range %g..%g for %s", v, code.Unit, code.Min, code.Max, code.Display)
		}
		at := r.At()
		ms := at.UnixMilli()
		if ms < year2000 {
			return nil, "", bad(r, "time %s is before 2000: the device clock is not set", at.Format(time.RFC3339Nano))
		}
		if ms > latest {
			return nil, "", bad(r, "time %s is %s ahead of the gateway's clock", at.Format(time.RFC3339Nano), at.Sub(received).Round(time.Second))
		}
		k := key{code.ID, ms}
		if _, dup := seen[k]; dup {
			return nil, "", bad(r, "another record of this pack has %s at %s", code.ID, at.Format(time.RFC3339Nano))
		}
		seen[k] = struct{}{}
		out = append(out, reading{code: code.ID, unit: code.Unit, kind: code.Kind, value: v, ms: ms})
	}
	if name == "" {
		name = first
	}
	return out, name, nil
}

// encode writes the readings as one SenML JSON pack (gateway.EncodePack); normalise has
// already refused a pack repeating a (code, time).
func encode(device string, rs []reading) ([]byte, error) {
	gr := make([]gateway.Reading, len(rs))
	for i, r := range rs {
		gr[i] = gateway.Reading{Code: r.code, Unit: r.unit, Value: r.value, At: time.UnixMilli(r.ms)}
	}
	data, _, err := gateway.EncodePack(device, gr)
	return data, err
}
