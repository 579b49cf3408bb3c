// Package agent assembles the edge gateway daemon (`iomt gateway`): the spool, the device
// adapters that feed it (MLLP for bedside monitors, the BLE bridge endpoint, SenML over local
// HTTP and CoAP), edge alarms between them and the spool, the uplink that drains it to the
// cloud, and an HTTP listener for /metrics and /healthz.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/ble"
	"github.com/iomt/iomt/gateway/edge"
	"github.com/iomt/iomt/gateway/identity"
	"github.com/iomt/iomt/gateway/local"
	"github.com/iomt/iomt/gateway/mllp"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/gateway/uplink"
)

// Agent is a configured gateway. New opens the spool and the listeners; Run serves.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	spool  *spool.Spool
	uplink *uplink.Uplink
	ident  *identity.File
	sink   gateway.Sink

	edge *edge.Alarms

	mllp     *mllp.Server
	mllpLn   net.Listener
	local    *local.Adapter
	coapConn *net.UDPConn
	httpLn   net.Listener
	mux      *http.ServeMux
}

// New builds the gateway from cfg: it opens the spool and binds the listeners, so a port
// already in use is reported here, but serves nothing before Run.
func New(cfg Config, log *slog.Logger) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: data directory: %w", err)
	}
	a.spool, err = spool.Open(cfg.DataDir+"/spool", spool.Options{MaxBytes: cfg.SpoolMaxBytes, Logger: log, Registerer: a.reg})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	u := cfg.Uplink
	pass, err := u.password()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	tc, err := tlsFor(u)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a.uplink, err = uplink.New(uplink.Config{
		Spool: a.spool, URL: u.URL, AllowPlaintext: u.AllowPlaintext, TLS: tc, Username: u.Username, Password: pass, ClientID: u.ClientID,
		TopicPrefix: u.TopicPrefix, Tenant: u.Tenant, Window: u.Window,
		BackoffMin: u.BackoffMin, BackoffMax: u.BackoffMax, SkewThreshold: u.SkewThreshold, MaxAhead: u.MaxAhead,
		RejectedFile: cfg.DataDir + "/rejected.jsonl", Logger: log, Registerer: a.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a.sink = &spoolSink{spool: a.spool, up: a.uplink}
	if e := cfg.Edge; e.Enabled {
		// Between the adapters and the spool: every pack goes on to the spool unchanged,
		// and while the uplink is down the readings are also judged by local rules.
		var rules []edge.Rule
		if e.RulesFile != "" {
			data, err := os.ReadFile(e.RulesFile)
			if err != nil {
				return nil, fmt.Errorf("gateway: edge rules: %w", err)
			}
			if rules, err = edge.ParseRules(data, nil); err != nil {
				return nil, fmt.Errorf("gateway: edge rules %s: %w", e.RulesFile, err)
			}
		}
		a.edge, err = edge.New(a.sink, edge.Config{
			UplinkDown: a.uplink.DownSince, Rules: rules, Threshold: e.Threshold, Realert: e.Realert,
			WebhookURL: e.WebhookURL, Gateway: e.Name, Logger: log.With("component", "edge"), Registerer: a.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		a.sink = a.edge
	}

	if cfg.IdentityFile != "" {
		if a.ident, err = identity.Open(cfg.IdentityFile, log); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if cfg.MLLP.Listen != "" {
		a.mllp, err = mllp.New(mllp.Config{
			Resolver: a.ident, Sink: a.sink, Logger: log.With("adapter", "mllp"), Registerer: a.reg,
			ReadTimeout: cfg.MLLP.ReadTimeout, Application: cfg.MLLP.Application, Facility: cfg.MLLP.Facility,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if a.mllpLn, err = net.Listen("tcp", cfg.MLLP.Listen); err != nil {
			return nil, fmt.Errorf("gateway: mllp.listen: %w", err)
		}
	}
	if cfg.BLE.Enabled {
		loc := time.UTC
		if cfg.BLE.Timezone != "" {
			if loc, err = time.LoadLocation(cfg.BLE.Timezone); err != nil {
				return nil, fmt.Errorf("gateway: ble.timezone: %w", err)
			}
		}
		h, err := ble.New(ble.Config{Resolver: a.ident, Sink: a.sink, Logger: log.With("adapter", "ble"), Registerer: a.reg, Location: loc})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		a.mux.Handle("POST /ble/v1/notifications", h)
	}
	if l := cfg.Local; l.HTTP || l.CoAPListen != "" {
		a.local, err = local.New(local.Config{Resolver: a.ident, Sink: a.sink, Logger: log.With("adapter", "local"), Registerer: a.reg})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if l.HTTP {
			h := a.local.HTTPHandler()
			a.mux.Handle("/senml", h)
			a.mux.Handle("/senml/", h)
		}
		if l.CoAPListen != "" {
			ua, err := net.ResolveUDPAddr("udp", l.CoAPListen)
			if err != nil {
				return nil, fmt.Errorf("gateway: local.coap_listen: %w", err)
			}
			if a.coapConn, err = net.ListenUDP("udp", ua); err != nil {
				return nil, fmt.Errorf("gateway: local.coap_listen: %w", err)
			}
		}
	}

	if cfg.HTTP.Listen != "" {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
		a.mux.HandleFunc("GET /healthz", a.healthz)
		if a.httpLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("gateway: http.listen: %w", err)
		}
	}
	return a, nil
}

// tlsFor turns the file settings into a TLS configuration; nil means the system roots and no
// client certificate.
func tlsFor(u UplinkConfig) (*tls.Config, error) {
	if u.CAFile == "" && u.CertFile == "" {
		return nil, nil
	}
	return uplink.TLSConfig(u.CAFile, u.CertFile, u.KeyFile)
}

// MLLPAddr is the MLLP listener's address ("" when disabled).
func (a *Agent) MLLPAddr() string {
	if a.mllpLn == nil {
		return ""
	}
	return a.mllpLn.Addr().String()
}

// CoAPAddr is the CoAP (UDP) listener's address ("" when disabled).
func (a *Agent) CoAPAddr() string {
	if a.coapConn == nil {
		return ""
	}
	return a.coapConn.LocalAddr().String()
}

// HTTPAddr is the HTTP listener's address ("" when disabled).
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// Sink is where adapters hand packs: the spool, which returns once the pack is on disk.
func (a *Agent) Sink() gateway.Sink { return a.sink }

// Uplink is the agent's uplink, for its state (DownSince, Connected).
func (a *Agent) Uplink() *uplink.Uplink { return a.uplink }

// ReloadIdentities re-reads the identity file; a bad file leaves the mapping in force.
func (a *Agent) ReloadIdentities() error {
	if a.ident == nil {
		return errors.New("gateway: no identity file configured")
	}
	return a.ident.Reload()
}

// Run serves until ctx is done, then stops the adapters (messages being stored are stored and
// acknowledged), the uplink, and closes the spool. It returns the first failure of a part.
func (a *Agent) Run(ctx context.Context) error {
	defer a.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		if err == nil {
			return
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	// The adapters stop before the uplink and the spool, so that nothing is put into a
	// closed spool.
	var adapters sync.WaitGroup
	if a.mllp != nil {
		adapters.Add(1)
		go func() {
			defer adapters.Done()
			fail(a.mllp.Serve(ctx, a.mllpLn))
		}()
	}
	if a.coapConn != nil {
		adapters.Add(1)
		go func() {
			defer adapters.Done()
			fail(a.local.ServeCoAP(ctx, a.coapConn))
		}()
	}
	if a.edge != nil {
		// Webhook delivery and the tick that fires pending alerts; it outlives the adapters
		// only until ctx ends.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.edge.Run(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("gateway: edge alarms: %w", err))
			}
		}()
	}
	var srv *http.Server
	if a.httpLn != nil {
		srv = &http.Server{Handler: a.mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
		adapters.Add(1)
		go func() {
			defer adapters.Done()
			if err := srv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("gateway: http: %w", err))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		fail(a.uplink.Run(ctx))
	}()
	a.log.Info("gateway running", "mllp", a.MLLPAddr(), "http", a.HTTPAddr(), "uplink", a.cfg.Uplink.URL, "data", a.cfg.DataDir)
	<-ctx.Done()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	adapters.Wait()
	wg.Wait()
	a.log.Info("gateway stopped")
	return errors.Join(errs...)
}

func (a *Agent) close() {
	if a.mllpLn != nil {
		// Serve closed it already when it ran; not when New failed after binding it.
		a.mllpLn.Close()
	}
	if a.coapConn != nil {
		a.coapConn.Close()
	}
	if a.httpLn != nil {
		a.httpLn.Close()
	}
	if a.spool != nil {
		if err := a.spool.Close(); err != nil {
			a.log.Error("closing the spool", "err", err)
		}
	}
}

// Health is what /healthz reports.
type Health struct {
	Status      string    `json:"status"` // "ok", or "degraded" while the uplink is down
	UplinkUp    bool      `json:"uplink_up"`
	DownSince   time.Time `json:"uplink_down_since,omitzero"`
	SpoolDepth  int       `json:"spool_depth"`
	SpoolBytes  int64     `json:"spool_bytes"`
	SpoolOldest time.Time `json:"spool_oldest,omitzero"`
}

// healthz answers 200 while the gateway accepts readings, with the uplink's state in the
// body: a gateway whose uplink is down still protects readings, so it is degraded, not dead.
func (a *Agent) healthz(w http.ResponseWriter, _ *http.Request) {
	depth, bytes, oldest := a.spool.Stats()
	since, down := a.uplink.DownSince()
	h := Health{Status: "ok", UplinkUp: !down, SpoolDepth: depth, SpoolBytes: bytes, SpoolOldest: oldest}
	if down {
		h.Status, h.DownSince = "degraded", since.UTC()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h)
}

// spoolSink is the adapters' Sink: Put returns after fsync, then the uplink is woken.
type spoolSink struct {
	spool *spool.Spool
	up    *uplink.Uplink
}

func (s *spoolSink) Accept(ctx context.Context, device string, pack []byte, class gateway.Class) error {
	if _, err := s.spool.Put(ctx, spool.Entry{Device: device, Class: class, Payload: pack}); err != nil {
		return err
	}
	s.up.Notify()
	return nil
}
