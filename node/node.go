// Package node assembles a running iomt node from its parts: store, bus, ingest, the MQTT
// broker and the HTTP API. `iomt serve` runs one; tests and `iomt demo` start them in-process.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/watch"
	"github.com/iomt/iomt/web"
)

// Config is what a node needs; cmd/iomt fills it from flags.
type Config struct {
	DataDir       string
	HTTPAddr      string
	MQTTAddr      string
	AdminToken    string
	MaxPacketSize uint32
	MaxFuture     time.Duration
	// NoSync skips fsync on append: faster, and still safe against a crash of the process,
	// but not against a power failure. For benchmarks and throw-away demos.
	NoSync bool
	Logger *slog.Logger
}

// Node is a running iomt node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    *embedded.Store
	bus      *memory.Bus
	broker   *mqtt.Broker
	http     *http.Server
	httpLn   net.Listener
	mqttLn   net.Listener
	auditLog *os.File
	cancel   context.CancelFunc
	httpDone chan error
}

// listen opens addr and, when it is taken, says which setting asked for it.
func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s address %s is already in use (choose another with --%s-addr): %w", what, addr, what, err)
		}
		return nil, fmt.Errorf("%s address %s: %w", what, addr, err)
	}
	return ln, nil
}

// Start opens the store and serves HTTP and MQTT until Close.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.AdminToken == "" {
		return nil, errors.New("node: an admin token is required")
	}
	n := &Node{cfg: cfg, log: log, httpDone: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	if n.httpLn, err = listen("http", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	if n.mqttLn, err = listen("mqtt", cfg.MQTTAddr); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	n.store, err = embedded.Open(filepath.Join(cfg.DataDir, "store"), embedded.Options{Logger: log, NoSync: cfg.NoSync})
	if err != nil {
		return nil, err
	}
	n.auditLog, err = os.OpenFile(filepath.Join(cfg.DataDir, "audit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	audit := slog.New(slog.NewJSONHandler(n.auditLog, nil))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cat := codes.New()
	n.bus = memory.New(memory.Options{})
	ing := ingest.New(cat, n.store, n.store, n.bus, log, ingest.NewMetrics(reg), ingest.Options{MaxFuture: cfg.MaxFuture})
	auth := ingest.Authenticator{Registry: n.store}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	live := api.NewLive()
	if err := n.bus.Subscribe(runCtx, "live", live.Deliver); err != nil {
		return nil, err
	}

	// CGM alerts: one monitor per patient, fed by the bus, told to live streams.
	cgm, err := watch.NewCGM(glucose.DefaultSettings(), func(patient string, a glucose.Alert) {
		live.Notify(patient, "cgm-alert", api.CGMAlert{Patient: patient, Alert: a})
	}, log)
	if err != nil {
		return nil, err
	}
	if err := n.bus.Subscribe(runCtx, "cgm-alerts", cgm.Deliver); err != nil {
		return nil, err
	}
	go cgm.Run(runCtx, time.Minute)

	n.broker, err = mqtt.New(n.mqttLn, ing, auth, mqtt.Options{MaxPacketSize: cfg.MaxPacketSize, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if err := n.broker.Serve(); err != nil {
		return nil, err
	}
	handler, err := api.New(api.Config{
		Store: n.store, Ingester: ing, Auth: auth, Catalog: cat, Live: live,
		AdminToken: cfg.AdminToken, Logger: log, Audit: audit, Gatherer: reg,
		MQTTAddr: n.broker.Addr().String(), UI: web.Handler(), CGMAlerts: cgm.Alerts,
	})
	if err != nil {
		return nil, err
	}
	n.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { n.httpDone <- n.http.Serve(n.httpLn) }()
	log.Info("iomt node started", "http", n.HTTPAddr(), "mqtt", n.MQTTAddr(), "data", cfg.DataDir)
	return n, nil
}

// HTTPAddr is the address the API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// MQTTAddr is the address the broker listens on.
func (n *Node) MQTTAddr() string { return n.broker.Addr().String() }

// Store is the node's store, for in-process tools.
func (n *Node) Store() iomt.Store { return n.store }

// Close stops taking traffic, lets what is in flight finish, and closes the store.
func (n *Node) Close() error {
	var errs []error
	if n.http != nil {
		// Live streams run until their context ends; end them so Shutdown does not wait.
		n.cancel()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.http.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	errs = append(errs, n.closeAll())
	n.log.Info("iomt node stopped")
	return errors.Join(errs...)
}

func (n *Node) closeAll() error {
	var errs []error
	if n.cancel != nil {
		n.cancel()
	}
	if n.broker != nil {
		errs = append(errs, n.broker.Close())
	}
	if n.bus != nil {
		errs = append(errs, n.bus.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.auditLog != nil {
		errs = append(errs, n.auditLog.Close())
	}
	// Listeners not yet handed to their servers (a failed Start) are closed here.
	if n.httpLn != nil && n.http == nil {
		n.httpLn.Close()
	}
	if n.mqttLn != nil && n.broker == nil {
		n.mqttLn.Close()
	}
	return errors.Join(errs...)
}
