// Package ingest turns what a device sends (a SenML pack, JSON or CBOR) into validated,
// normalised observations and waveform segments, stores them durably and publishes them on the
// bus. The MQTT broker (ingest/mqtt) and the HTTP API both call the same Ingester, so a pack is
// judged the same way whichever way it came.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/senml"
)

// ErrMalformed marks a pack that could not be decoded at all; nothing of it was kept.
var ErrMalformed = errors.New("malformed pack")

// ErrUnbound marks a device that has no patient to attribute readings to.
var ErrUnbound = errors.New("device is not bound to a patient")

// Options tune the validation; zero values take the defaults.
type Options struct {
	MaxFuture  time.Duration // readings further ahead of server time are refused; default 5 min
	MaxRecords int           // records per pack; default 10,000
	Now        func() time.Time
}

// Ingester validates, stores and publishes packs. It is safe for concurrent use.
type Ingester struct {
	cat   *codes.Catalog
	store iomt.SeriesStore
	reg   iomt.Registry
	bus   iomt.Bus
	log   *slog.Logger
	met   *Metrics
	opts  Options
}

// New returns an Ingester writing to store and bus. met may be nil.
func New(cat *codes.Catalog, store iomt.SeriesStore, reg iomt.Registry, bus iomt.Bus, log *slog.Logger, met *Metrics, o Options) *Ingester {
	if o.MaxFuture <= 0 {
		o.MaxFuture = 5 * time.Minute
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{cat: cat, store: store, reg: reg, bus: bus, log: log, met: met, opts: o}
}

// Result says what became of a pack's records.
type Result struct {
	Accepted   int       `json:"accepted"`
	Duplicates int       `json:"duplicates"` // already stored: same device, code and time
	Refused    []Refusal `json:"refused,omitempty"`
}

// Refusal is one record that was not kept, and why.
type Refusal struct {
	Record int    `json:"record"` // 0-based index in the pack
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
}

// Summary renders the result in one line, for an MQTT v5 reason string or a log.
func (r Result) Summary(max int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "accepted %d, duplicates %d, refused %d", r.Accepted, r.Duplicates, len(r.Refused))
	for i, f := range r.Refused {
		s := fmt.Sprintf("; record %d", f.Record)
		if f.Name != "" {
			s += fmt.Sprintf(" (%s)", f.Name)
		}
		s += ": " + f.Reason
		if b.Len()+len(s) > max {
			fmt.Fprintf(&b, "; and %d more", len(r.Refused)-i)
			break
		}
		b.WriteString(s)
	}
	return b.String()
}

// Ingest decodes payload, keeps the good records and reports the bad ones. transport labels
// the metrics ("mqtt", "http"). An error means nothing was kept: ErrMalformed or ErrUnbound
// for the device's fault, anything else for the server's.
func (in *Ingester) Ingest(ctx context.Context, dev iomt.Device, payload []byte, transport string) (Result, error) {
	return in.ingest(ctx, dev, payload, transport, true)
}

// ChartDevice is the device ID under which clinician-charted observations (consciousness,
// oxygen delivery) are stored: they come from a person through the API, not from a device.
const ChartDevice = "iomt-chart"

// Chart ingests observations a clinician charted for a patient, checked as a device's are
// (transport "chart"). There is no device whose status to record.
func (in *Ingester) Chart(ctx context.Context, p iomt.Patient, payload []byte) (Result, error) {
	return in.ingest(ctx, iomt.Device{ID: ChartDevice, Tenant: p.Tenant, Kind: "chart", Patient: p.ID}, payload, "chart", false)
}

func (in *Ingester) ingest(ctx context.Context, dev iomt.Device, payload []byte, transport string, deviceStatus bool) (Result, error) {
	now := in.opts.Now()
	if dev.Patient == "" {
		in.met.pack(transport, "unbound")
		return Result{}, fmt.Errorf("device %s: %w", dev.ID, ErrUnbound)
	}
	pack, err := senml.DecodeOptions{MaxRecords: in.opts.MaxRecords}.Decode(payload)
	if err != nil {
		in.met.pack(transport, "malformed")
		return Result{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	recs, err := pack.Resolve(now)
	if err != nil {
		in.met.pack(transport, "malformed")
		return Result{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	batch, status, res := in.normalise(dev, recs, now)
	if n := batch.Samples(); n > 0 {
		publish := func(dups []int) {
			if len(dups) > 0 && dups[0] >= n {
				return
			}
			if err := in.bus.Publish(ctx, batch); err != nil {
				// Live consumers miss the batch, which is logged, not refused: it is stored.
				in.log.Warn("publish batch", "device", dev.ID, "err", err)
			}
		}
		var dups []int
		var err error
		if sa, ok := in.store.(iomt.StagedAppender); ok {
			// Alarms and live views need not wait for the fsync; the device's ack does.
			dups, err = sa.AppendStaged(ctx, []iomt.Batch{batch}, publish)
		} else if dups, err = in.store.Append(ctx, []iomt.Batch{batch}); err == nil {
			publish(dups)
		}
		if errors.Is(err, iomt.ErrInvalid) {
			// The store refuses the batch itself, not for now: sent again it would be refused
			// again, for ever. Ingest's own checks should have caught it, hence the error log.
			in.met.pack(transport, "malformed")
			in.log.Error("store refused a pack ingest had accepted", "device", dev.ID, "transport", transport, "err", err)
			return Result{}, fmt.Errorf("%w: the store refused it: %v", ErrMalformed, err)
		}
		if err != nil {
			in.met.pack(transport, "error")
			return Result{}, fmt.Errorf("store batch of device %s: %w", dev.ID, err)
		}
		if len(dups) > 0 {
			res.Duplicates = dups[0]
		}
		res.Accepted = n - res.Duplicates
	}
	status.Device = dev.ID
	status.LastSeen = now.UTC().Truncate(iomt.TimePrecision)
	if deviceStatus {
		if err := in.reg.UpdateDeviceStatus(ctx, []iomt.DeviceStatus{status}); err != nil {
			in.log.Warn("update device status", "device", dev.ID, "err", err)
		}
	}
	in.met.records(transport, res)
	if len(res.Refused) > 0 {
		in.log.Info("records refused", "device", dev.ID, "transport", transport, "summary", res.Summary(512))
	}
	return res, nil
}

type wavePoint struct {
	rec int
	t   float64 // seconds
	v   float64
}

// year2000 is the earliest time a reading may have: before it, the device clock is not set.
var year2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// normalise validates every record and shapes the good ones into a batch.
func (in *Ingester) normalise(dev iomt.Device, recs []senml.Resolved, now time.Time) (iomt.Batch, iomt.DeviceStatus, Result) {
	var res Result
	var status iomt.DeviceStatus
	b := iomt.Batch{Tenant: dev.Tenant, Device: dev.ID, Patient: dev.Patient, Received: now.UTC()}
	// Resolve returns the records in time order, so the records of one millisecond are
	// adjacent: the codes kept for the current millisecond are all a duplicate check needs.
	var (
		runMS   int64
		runCode []string
	)
	// A waveform pack repeats one name hundreds of times: look it up once.
	var (
		lastName string
		lastKey  string
		lastCode codes.Code
		lastOK   bool
		looked   bool
	)
	// One or two waveform codes per pack: a slice searched from its end is cheaper
	// than a map assignment per sample.
	type wave struct {
		id, name string // name: the first record name that gave this code
		pts      []wavePoint
	}
	var waves []wave
	refuse := func(i int, name, format string, args ...any) {
		res.Refused = append(res.Refused, Refusal{Record: i, Name: name, Reason: fmt.Sprintf(format, args...)})
	}
	latest := now.Add(in.opts.MaxFuture)
	for _, r := range recs {
		i := r.Index
		name := r.Name
		if !looked || name != lastName {
			lastKey = name
			if j := strings.LastIndexAny(name, ":/"); j >= 0 {
				lastKey = name[j+1:]
			}
			lastCode, lastOK = in.cat.Lookup(lastKey)
			lastName, looked = name, true
		}
		key, code, ok := lastKey, lastCode, lastOK
		if !ok {
			refuse(i, name, "unknown code %q (use a LOINC code, an MDC reference id or an alias from the codes catalog)", key)
			continue
		}
		if code.Kind == codes.Panel {
			refuse(i, name, "%s is a panel without a value of its own: send its components (%s)", code.Display, strings.Join(code.Components, ", "))
			continue
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
			refuse(i, name, "no numeric value (v) for %s", code.Display)
			continue
		}
		// Convert leaves a value in the code's own unit (or none) as it is.
		if r.Unit != "" && r.Unit != code.Unit {
			var err error
			if v, err = in.cat.Convert(code, v, r.Unit); err != nil {
				refuse(i, name, "%v", err)
				continue
			}
		}
		if math.IsNaN(v) || v < code.Min || v > code.Max {
			refuse(i, name, "value %g %s is outside the possible range %g..%g for %s", v, code.Unit, code.Min, code.Max, code.Display)
			continue
		}
		at := r.At()
		if at.After(latest) {
			refuse(i, name, "time %s is %s ahead of server time", at.Format(time.RFC3339Nano), at.Sub(now).Round(time.Second))
			continue
		}
		if at.Before(year2000) {
			refuse(i, name, "time %s is before 2000: the device clock is not set", at.Format(time.RFC3339Nano))
			continue
		}
		if code.Kind == codes.DeviceStatus {
			vv := v
			status.Battery = &vv
			continue
		}
		if ms := at.UnixMilli(); ms != runMS || runCode == nil {
			runMS, runCode = ms, runCode[:0]
		} else if slices.Contains(runCode, code.ID) {
			refuse(i, name, "duplicate: another record of this pack has %s at %s", code.ID, at.Format(time.RFC3339Nano))
			continue
		}
		runCode = append(runCode, code.ID)
		if code.Kind == codes.Waveform {
			w := len(waves) - 1
			for w >= 0 && waves[w].id != code.ID {
				w--
			}
			if w < 0 {
				waves = append(waves, wave{id: code.ID, name: name, pts: make([]wavePoint, 0, len(recs))})
				w = len(waves) - 1
			}
			waves[w].pts = append(waves[w].pts, wavePoint{rec: i, t: r.Time, v: v})
			continue
		}
		b.Observations = append(b.Observations, iomt.Observation{
			Patient: dev.Patient, Device: dev.ID, Code: code.ID, Time: at, Value: v, Unit: code.Unit,
		})
	}
	for _, w := range waves {
		code, _ := in.cat.ByID(w.id)
		segs, lone := segments(dev, code, w.pts)
		b.Waveforms = append(b.Waveforms, segs...)
		for _, p := range lone {
			refuse(p.rec, w.name, "a lone %s sample: without another sample of it in the pack its sampling period is unknown", code.ID)
		}
	}
	// Resolve sorts records by time; report refusals in pack order.
	slices.SortStableFunc(res.Refused, func(x, y Refusal) int { return x.Record - y.Record })
	slices.SortFunc(b.Waveforms, func(x, y iomt.Waveform) int {
		if c := strings.Compare(x.Code, y.Code); c != 0 {
			return c
		}
		return x.Start.Compare(y.Start)
	})
	return b, status, res
}

// periodTolerance is how far a sample may sit from its slot on an even grid, in seconds:
// half a millisecond, since iomt's times are milliseconds.
const periodTolerance = 0.0005

// segments cuts a code's samples into evenly spaced runs. A run of one sample (a lone sample,
// or one off its neighbours' grid) takes the period of the run before it, else of the run
// after it; a pack with no other sample of the code leaves its period unknown, and that
// sample is returned in lone rather than stored with a period it does not have.
func segments(dev iomt.Device, code codes.Code, pts []wavePoint) (out []iomt.Waveform, lone []wavePoint) {
	slices.SortFunc(pts, func(a, b wavePoint) int { return cmpFloat(a.t, b.t) })
	for start := 0; start < len(pts); {
		end := start + 1
		var period float64
		if end < len(pts) {
			period = pts[end].t - pts[start].t
			end++
			for end < len(pts) {
				want := pts[start].t + float64(end-start)*period
				if math.Abs(pts[end].t-want) > periodTolerance {
					break
				}
				end++
			}
			// Refine the period over the whole run, so that rounding in one delta does not
			// accumulate across a long segment.
			period = (pts[end-1].t - pts[start].t) / float64(end-1-start)
		}
		w := iomt.Waveform{
			Patient: dev.Patient, Device: dev.ID, Code: code.ID, Unit: code.Unit, Scale: code.Scale,
			Start:   time.UnixMilli(int64(math.Round(pts[start].t * 1000))).UTC(),
			Period:  time.Duration(math.Round(period * 1e9)),
			Samples: make([]int32, 0, end-start),
		}
		for _, p := range pts[start:end] {
			w.Samples = append(w.Samples, int32(math.Round(p.v/code.Scale)))
		}
		out = append(out, w)
		start = end
	}
	// Fill each one-sample run's period from the nearest run before it that has one, else
	// from the first one after it.
	known := time.Duration(0)
	for i := range out {
		if out[i].Period != 0 {
			known = out[i].Period
			break
		}
	}
	if known == 0 {
		return nil, pts // no run of two: every sample is alone
	}
	for i := range out {
		if out[i].Period == 0 {
			out[i].Period = known
		}
		known = out[i].Period
	}
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
