package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iomt/iomt/sensing"
	"github.com/iomt/iomt/wire/senml"
)

// Options configure a run.
type Options struct {
	Broker string // host:port of the MQTT broker
	CBOR   bool   // send SenML CBOR instead of JSON
	Tick   time.Duration
	// ConnectRate bounds new connections per second (default 1000): thousands of devices
	// dialling at once overflow the listener's accept queue and then retry for seconds.
	ConnectRate int
	Logger      *slog.Logger
}

// Stats count what a run sent. They are safe to read while it runs.
type Stats struct {
	Messages atomic.Int64 // packs acknowledged with success
	Samples  atomic.Int64 // values in those packs
	Refused  atomic.Int64 // packs the server answered with an error reason code
	Partial  atomic.Int64 // packs acknowledged with some records refused
	Failed   atomic.Int64 // packs in flight when a connection was lost or timed out (sent again)
	Connects atomic.Int64 // devices connected
	ConnErrs atomic.Int64 // connection attempts that failed
	// Commands from the server (e.g. measure-bp from an alarm rule): carried out, answered
	// "rejected" (unknown, or not something this device does; or unreadable), and repeated
	// IDs acknowledged again without acting.
	Commands    atomic.Int64
	CmdRejected atomic.Int64
	CmdRepeated atomic.Int64
	lat         latencies
}

// Latency returns the publish → PUBACK quantiles (q in 0..1) of the acknowledged packs since
// the last call, and resets them. The server acknowledges only what it has stored durably,
// so this is publish → stored.
func (s *Stats) Latency(qs ...float64) []time.Duration { return s.lat.take(qs) }

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	if len(l.d) < 1<<20 {
		l.d = append(l.d, d)
	}
	l.mu.Unlock()
}

func (l *latencies) take(qs []float64) []time.Duration {
	l.mu.Lock()
	d := l.d
	l.d = nil
	l.mu.Unlock()
	out := make([]time.Duration, len(qs))
	if len(d) == 0 {
		return out
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	for i, q := range qs {
		out[i] = d[min(len(d)-1, int(q*float64(len(d))))]
	}
	return out
}

// Run connects every device of every bed and streams the simulated patients until ctx ends.
func Run(ctx context.Context, o Options, beds []Bed, st *Stats) error {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.ConnectRate <= 0 {
		o.ConnectRate = 1000
	}
	scs, err := scenarios(beds)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second / time.Duration(o.ConnectRate))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				select {
				case gate <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	errc := make(chan error, 1)
	for i, b := range beds {
		sc, ok := scs[b.Scenario]
		if !ok {
			return fmt.Errorf("bed %d: unknown scenario %q", i, b.Scenario)
		}
		devs := map[string]*device{}
		// Commands for the bed's devices are carried out by the bed's goroutine, which owns
		// the patient model. They are rare; a small buffer rides out a burst.
		inbox := make(chan inbound, 16)
		for _, d := range b.Devices {
			dv := &device{Device: d, st: st, log: log, gate: gate, ready: make(chan struct{})}
			co := ClientOptions{
				Addr: o.Broker, ClientID: d.ID, Username: d.ID, Password: d.Password,
				OnAck: dv.onAck, Logger: log,
			}
			if cmd, ack, ok := commandTopics(d.Topic); ok {
				dv.cmdTopic, dv.ackTopic, dv.inbox = cmd, ack, inbox
				co.Subscribe, co.OnMessage = []string{cmd}, dv.onMessage
			} else {
				log.Warn("sim device will not hear commands: unexpected data topic", "device", d.ID, "topic", d.Topic)
			}
			dv.c = NewClient(co)
			devs[d.Kind] = dv
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := dv.run(ctx); err != nil && ctx.Err() == nil {
					select {
					case errc <- err:
					default:
					}
				}
			}()
		}
		wg.Add(1)
		go func(b Bed) {
			defer wg.Done()
			bed(ctx, o, b, b.scenario(sc), devs, inbox)
		}(b)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		wg.Wait()
		return err
	}
	wg.Wait()
	return nil
}

// bed advances one patient every tick and hands each emission to its device, and carries out
// the commands its devices receive.
func bed(ctx context.Context, o Options, b Bed, sc sensing.Scenario, devs map[string]*device, inbox <-chan inbound) {
	speed := b.Speed
	if speed < 1 {
		speed = 1
	}
	// A patient's story starts once all its devices are connected, so that thousands of
	// devices coming up do not queue data (and CPU) while others still wait to connect.
	for _, d := range devs {
		select {
		case <-d.ready:
		case <-ctx.Done():
			return
		}
	}
	wall0 := time.Now()
	start := wall0.Add(-b.Lead).UTC()
	p := sensing.NewPatient(sc, b.Seed, start)
	clock := func(now time.Time) time.Time {
		t := start.Add(time.Duration(float64(now.Sub(wall0)) * speed))
		if t.After(now) {
			return now
		}
		return t
	}
	tick := time.NewTicker(o.Tick)
	defer tick.Stop()
	var em []sensing.Emission
	enc := newPackEncoder(o.CBOR)
	var buf []byte // reused: Publish copies the pack
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-inbox:
			if err := handleCommand(ctx, p, clock(time.Now()), m); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.dev.log.Error("sim command", "err", err)
			}
		case now := <-tick.C:
			em = p.AdvanceAppend(em[:0], clock(now))
			for i := range em {
				e := &em[i]
				d := devs[e.Device]
				if d == nil {
					continue
				}
				var n int
				var err error
				buf, n, err = enc.appendPack(buf[:0], e)
				if err != nil {
					d.log.Error("encode pack", "device", d.ID, "err", err)
					continue
				}
				if len(buf) == 0 {
					continue
				}
				if err := d.c.Publish(ctx, d.Topic, buf, n); err != nil {
					return // ctx ended
				}
			}
		}
	}
}

// AppendPack appends the records of one SenML pack for an emission to p and says how many
// values they hold. The records point into e, which must outlive their use. The simulator
// encodes emissions directly (packEncoder); this is the reference it is tested against.
func AppendPack(p senml.Pack, e *sensing.Emission) (senml.Pack, int) {
	n := len(e.Samples)
	for _, c := range e.Chunks {
		n += len(c.Values)
	}
	bt := float64(e.Time.UnixMilli()) / 1000
	rel := func(t time.Time) float64 { return float64(t.UnixMilli())/1000 - bt }
	for i := range e.Samples {
		s := &e.Samples[i]
		p = append(p, senml.Record{Name: s.Code, Unit: s.Unit, Value: &s.Value, Time: rel(s.Time)})
	}
	for _, c := range e.Chunks {
		t0 := float64(c.Start.UnixMilli()) / 1000
		per := c.Period.Seconds()
		for i := range c.Values {
			r := senml.Record{Name: c.Code, Value: &c.Values[i], Time: t0 + float64(i)*per - bt}
			if i == 0 {
				r.Unit = c.Unit
			}
			p = append(p, r)
		}
	}
	if e.Battery != nil {
		p = append(p, senml.Record{Name: sensing.CodeBattery, Unit: batteryUnit, Value: e.Battery})
	}
	if len(p) > 0 {
		p[0].BaseName = baseName(e.Device)
		p[0].BaseTime = bt
	}
	return p, n
}

// batteryUnit is SenML's unit of remaining battery energy, in percent.
const batteryUnit = "%EL"

// baseName is the SenML base name of a pack from a device of the given kind.
func baseName(kind string) string { return "urn:dev:iomt:" + kind + ":" }

type device struct {
	Device
	st    *Stats
	log   *slog.Logger
	c     *Client
	gate  <-chan struct{}
	ready chan struct{} // closed once the device has connected the first time

	cmdTopic, ackTopic string
	inbox              chan<- inbound // the bed's; nil if the device hears no commands
	// Answers to the commands carried out, by ID, oldest first in doneOrder; used only by
	// the bed's goroutine.
	done      map[string]commandAck
	doneOrder []string
}

// run keeps the device connected until ctx ends. Publishes queue in the client while it is
// disconnected, and those a lost connection left unacknowledged are sent again: the server
// drops what it already stored.
func (d *device) run(ctx context.Context) error {
	defer d.c.Close()
	for {
		if err := d.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Wrong credentials will not get better by retrying.
			if ce := (*ConnectError)(nil); errors.As(err, &ce) {
				return fmt.Errorf("device %s: %w", d.ID, err)
			}
			d.st.ConnErrs.Add(1)
			d.log.Warn("sim connect", "device", d.ID, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		select {
		case err := <-d.c.Lost():
			if ctx.Err() != nil {
				return nil
			}
			if le := (*LostError)(nil); errors.As(err, &le) {
				d.st.Failed.Add(int64(le.InFlight))
			}
			d.log.Warn("sim connection lost", "device", d.ID, "err", err)
		case <-ctx.Done():
			return nil
		}
	}
}

func (d *device) connect(ctx context.Context) error {
	select {
	case <-d.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := d.c.Connect(ctx); err != nil {
		return err
	}
	if d.st.Connects.Add(1); d.ready != nil {
		select {
		case <-d.ready:
		default:
			close(d.ready)
		}
	}
	return nil
}

// onAck counts the server's answer to one pack.
func (d *device) onAck(a Ack) {
	if a.Meta == ackMeta {
		if a.Code >= 0x80 {
			d.log.Warn("sim command ack refused", "device", d.ID, "code", a.Code, "reason", a.Reason)
		}
		return
	}
	switch {
	case a.Code >= 0x80:
		d.st.Refused.Add(1)
		d.log.Warn("sim pack refused", "device", d.ID, "code", a.Code, "reason", a.Reason)
	case a.Reason != "":
		d.st.Partial.Add(1)
		d.st.Messages.Add(1)
		d.st.Samples.Add(int64(a.Meta))
		d.log.Debug("sim pack partly refused", "device", d.ID, "reason", a.Reason)
	default:
		d.st.Messages.Add(1)
		d.st.Samples.Add(int64(a.Meta))
		d.st.lat.add(time.Since(a.Queued))
	}
}
