// Package mllp is the gateway's listener for bedside monitors: HL7 v2 ORU^R01 (IHE PCD-01)
// over MLLP. Each message is decoded, its sender mapped to a platform device, its readings
// turned into a SenML pack and handed to a gateway.Sink; the ACK goes back only after that,
// so an AA means the readings are durable at the gateway.
package mllp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/wire/hl7v2"
	framing "github.com/iomt/iomt/wire/hl7v2/mllp"
)

// Config is what a Server needs. Resolver and Sink are required.
type Config struct {
	Resolver identity.Resolver
	Sink     gateway.Sink
	Catalog  *codes.Catalog // nil: codes.New()
	Logger   *slog.Logger   // nil: discard
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer

	// ReadTimeout bounds the wait for the next message on a connection (idle monitors
	// reconnect); 0 means 5 minutes.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an ACK; 0 means 10 seconds.
	WriteTimeout time.Duration
	// SinkTimeout bounds one Sink.Accept; 0 means 10 seconds. It runs on after shutdown
	// begins, so that a message being stored is still acknowledged.
	SinkTimeout time.Duration
	// MaxMessageSize bounds one message; 0 means the framing package's default (1 MiB).
	MaxMessageSize int
	// Application and Facility name the gateway in ACKs (MSH-3/4) when the message did
	// not address a receiver; empty Application means "iomt-gateway".
	Application, Facility string
	// SkewTolerance is how far a monitor's clock may run ahead of the gateway's (MSH-7
	// against receipt, the smallest lag of its last 32 messages) before its observation times
	// are moved back by that offset; 0 means 2 s, negative turns correction off. A clock
	// running behind is not corrected (see skew.go).
	SkewTolerance time.Duration
	// Now is the gateway's clock; nil means time.Now.
	Now func() time.Time
}

// Server accepts MLLP connections. Create it with New and run it with Serve.
type Server struct {
	cfg     Config
	cat     *codes.Catalog
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	skews skews
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Resolver == nil || cfg.Sink == nil {
		return nil, errors.New("mllp: Config needs a Resolver and a Sink")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.SinkTimeout <= 0 {
		cfg.SinkTimeout = 10 * time.Second
	}
	if cfg.Application == "" {
		cfg.Application = "iomt-gateway"
	}
	if cfg.SkewTolerance == 0 {
		cfg.SkewTolerance = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, cat: cfg.Catalog, log: cfg.Logger, conns: map[net.Conn]struct{}{}}
	if s.cat == nil {
		s.cat = codes.New()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// Serve accepts connections on ln until ctx is done, then closes ln, interrupts idle
// connections, lets messages in progress finish (stored and acknowledged) and returns nil.
// Any other accept failure is returned after the same drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			// Wakes a connection blocked reading; one busy with a message notices at its
			// next read.
			_ = c.SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
	})
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			s.serveConn(ctx, c)
		}()
	}
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("mllp: accepting connections: %w", err)
}

func (s *Server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
		s.metrics.conns.Inc()
		return
	}
	delete(s.conns, c)
	s.metrics.conns.Dec()
}

// serveConn reads messages one after another and answers each before reading the next, as
// MLLP's original mode requires.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := s.log.With("peer", c.RemoteAddr().String())
	log.Debug("monitor connected")
	r := framing.NewReader(c, s.cfg.MaxMessageSize)
	for ctx.Err() == nil {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
			log.Warn("setting read deadline", "err", err)
			return
		}
		raw, err := r.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				log.Debug("monitor disconnected")
				return
			case errors.Is(err, framing.ErrTooLarge):
				// The frame is lost but the stream can go on: refuse it so the monitor does
				// not wait for an ACK, and read the next one.
				s.metrics.frameErrors.WithLabelValues("too_large").Inc()
				log.Warn("message refused", "err", err)
				if !s.answer(c, log, nil, &hl7v2.Error{Code: hl7v2.ApplicationError, Reason: err.Error()}) {
					return
				}
				continue
			case errors.Is(err, framing.ErrGarbage):
				s.metrics.frameErrors.WithLabelValues("garbage").Inc()
				log.Warn("bytes outside an MLLP frame", "err", err)
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() == nil {
					log.Info("closing idle connection", "timeout", s.cfg.ReadTimeout)
				}
				return
			}
			s.metrics.frameErrors.WithLabelValues("read").Inc()
			log.Warn("reading from monitor", "err", err)
			return
		}
		m, err := s.handle(ctx, log, raw)
		if !s.answer(c, log, m, err) {
			return
		}
	}
}

// answer writes the ACK for m (nil when it did not parse) and counts it; false means the
// connection is unusable.
func (s *Server) answer(c net.Conn, log *slog.Logger, m *hl7v2.Message, err error) bool {
	ack := hl7v2.Ack(m, err, hl7v2.AckOptions{Application: s.cfg.Application, Facility: s.cfg.Facility})
	code := ack.Segment("MSA").Get(1, 1)
	s.metrics.messages.WithLabelValues(code).Inc()
	if err != nil {
		control := ""
		if m != nil {
			control = m.ControlID()
		}
		log.Warn("message not accepted", "ack", code, "control_id", control, "err", err)
	}
	if werr := c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); werr != nil {
		log.Warn("setting write deadline", "err", werr)
		return false
	}
	if werr := framing.Write(c, ack.Encode()); werr != nil {
		log.Warn("writing ACK", "ack", code, "err", werr)
		return false
	}
	return true
}

// handle processes one message and returns it (nil when it is not HL7) with the reason it
// was not accepted, if any.
func (s *Server) handle(ctx context.Context, log *slog.Logger, raw []byte) (*hl7v2.Message, error) {
	m, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, err
	}
	received := s.cfg.Now()
	rep, err := hl7v2.DecodeORU(m, s.cat)
	if err != nil {
		return m, err
	}
	if rep.Sent != nil {
		msh := m.Header()
		sender := msh.Get(3, 1) + "^" + msh.Get(3, 2) + "|" + msh.Get(4, 1) + "^" + msh.Get(4, 2)
		if d := s.skews.correction(sender, rep.Sent.Time, received, s.cfg.SkewTolerance); d != 0 {
			s.metrics.skewCorrected.Inc()
			log.Debug("monitor clock corrected", "sender", sender, "by", d)
			shiftTimes(rep, d)
		}
	}
	packs, err := s.convert(ctx, m, rep)
	if err != nil {
		return m, err
	}
	// Storing must not be cut short by shutdown: the monitor is owed an answer for a message
	// it already sent, and an AA for what was stored.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.SinkTimeout)
	defer cancel()
	for _, p := range packs {
		start := time.Now()
		err := s.cfg.Sink.Accept(sctx, p.device, p.data, p.class)
		s.metrics.sinkSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			// Ack turns a plain error into AE 207; the monitor sends the message again and
			// the readings' identity (device, code, time) keeps a partial first try harmless.
			return m, fmt.Errorf("storing readings for device %s: %w", p.device, err)
		}
		log.Debug("message accepted", "control_id", m.ControlID(), "device", p.device, "readings", p.readings, "class", p.class, "via", p.via)
	}
	return m, nil
}
