// Package node assembles a running iomt node from its parts: store, bus, ingest, the MQTT
// broker and the HTTP API. `iomt serve` runs one; tests and `iomt demo` start them in-process.
package node

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
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/alarm"
	"github.com/iomt/iomt/alarm/service"
	"github.com/iomt/iomt/analytics/glucose"
	"github.com/iomt/iomt/api"
	"github.com/iomt/iomt/bus/nats"
	"github.com/iomt/iomt/certfile"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
	"github.com/iomt/iomt/fhir/export"
	"github.com/iomt/iomt/ingest"
	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/watch"
	"github.com/iomt/iomt/web"
)

// Config is what a node needs; cmd/iomt fills it from flags.
type Config struct {
	DataDir  string
	HTTPAddr string
	MQTTAddr string
	// MQTTTLSCert and MQTTTLSKey, if set, make the broker speak MQTT over TLS (PEM files).
	MQTTTLSCert, MQTTTLSKey string
	// HTTPTLSCert and HTTPTLSKey, if set, serve the API, FHIR and dashboard over HTTPS (PEM
	// files, TLS 1.2 at least, with HSTS). Both pairs are reloaded when their files change.
	HTTPTLSCert, HTTPTLSKey string
	MaxPacketSize           uint32
	MaxFuture               time.Duration
	// NoSync skips fsync on append: faster, and still safe against a crash of the process,
	// but not against a power failure. For benchmarks and throw-away demos.
	NoSync bool
	Logger *slog.Logger
	// People configures sign-in, sessions and the bootstrap token.
	People PeopleConfig

	// Scale-out: a PostgreSQL URL for the store and NATS JetStream for the bus. Empty means
	// the embedded store in DataDir and the in-process bus.
	Postgres string
	NATS     NATSConfig
	// NodeID names this node in bus leases, logs and /api/v1/cluster; default: the host name
	// and a random suffix.
	NodeID string
	// FHIRExport, if its URL is set, pushes observations to an EHR's FHIR server.
	FHIRExport FHIRExportConfig
	// Alarms configures rules, routing and notifiers of the alarm service.
	Alarms AlarmsConfig
	// Retention, if set, drops readings older than this, a whole day at a time (PostgreSQL
	// partitions); the embedded store keeps everything.
	Retention time.Duration
	// HTTPLimits bound slow and idle HTTP clients (zero fields: the defaults).
	HTTPLimits HTTPLimits
	// MQTTLimits bound connections that have not logged in (zero fields: the defaults).
	MQTTLimits mqtt.Limits

	// MQTTClientCA, if set (with TLS), lets devices and gateways authenticate with a client
	// certificate verified against these CAs (PEM) whose subject CN is the device id.
	MQTTClientCA string
}

// FHIRExportConfig says where and what to export. Credentials are never logged.
type FHIRExportConfig struct {
	URL                string   // the EHR's FHIR R4 base URL
	Token              string   // bearer token, or
	Username, Password string   // basic authentication
	Codes              []string // catalog codes to export; default: the vital signs
	// AllowHTTP accepts a plain http:// URL on another machine (refused by default).
	AllowHTTP bool
}

// NATSConfig says how to reach NATS JetStream.
type NATSConfig struct {
	URL        string // nats://host:4222[,nats://...]; empty: in-process bus
	CredsFile  string // NATS credentials file (JWT + NKey), if the server wants one
	TLSCA      string // CA bundle to verify the server with
	TLSCert    string // client certificate and key, for mutual TLS
	TLSKey     string
	Partitions int           // partitions of the observation stream; equal on every node (default 16)
	Replicas   int           // JetStream replicas of the stream and the lease bucket (default 1; 3 in a NATS cluster)
	LeaseTTL   time.Duration // how long a dead node keeps its partitions (default a few seconds)
}

// Node is a running iomt node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	store    iomt.Store
	bus      iomt.Bus
	broker   *mqtt.Broker
	http     *http.Server
	httpLn   net.Listener
	mqttLn   net.Listener
	cancel   context.CancelFunc
	httpDone chan error
	retain   retainer
	exporter *export.Exporter
	exported chan struct{} // closed when the exporter's Run returns
	alarms   *service.Service
	people   *people
	routes   []api.Route
	httpTLS  *certfile.Pair // nil: plain HTTP
	warnings []string

	closeOnce sync.Once // Close may be called more than once (tests, signal handlers)
	closeErr  error
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
	if cfg.NodeID == "" {
		cfg.NodeID = nats.DefaultMember()
	}
	log = log.With("node", cfg.NodeID)
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
	// Devices and gateways across a network verify the server: MQTT over TLS on the same
	// address (8883 by convention).
	if cfg.MQTTClientCA != "" && cfg.MQTTTLSCert == "" {
		return nil, errors.New("node: a client CA for MQTT (--mqtt-client-ca) needs the broker to speak TLS (--mqtt-tls-cert, --mqtt-tls-key)")
	}
	mqttTLS, err := loadPair("mqtt", cfg.MQTTTLSCert, cfg.MQTTTLSKey, "mqtt-tls-cert", "mqtt-tls-key", log)
	if err != nil {
		return nil, err
	}
	if mqttTLS != nil {
		tc := mqttTLS.ServerConfig()
		if err := mqtt.WithClientCA(tc, cfg.MQTTClientCA); err != nil {
			return nil, fmt.Errorf("%w (--mqtt-client-ca)", err)
		}
		n.mqttLn = tls.NewListener(n.mqttLn, tc)
	}
	if n.httpTLS, err = loadPair("https", cfg.HTTPTLSCert, cfg.HTTPTLSKey, "tls-cert", "tls-key", log); err != nil {
		return nil, err
	}
	for _, w := range []string{
		plaintextWarning("the HTTP API (REST, FHIR, dashboard)", n.httpLn.Addr(), n.httpTLS != nil, "--tls-cert and --tls-key"),
		plaintextWarning("the MQTT broker", n.mqttLn.Addr(), mqttTLS != nil, "--mqtt-tls-cert and --mqtt-tls-key"),
	} {
		if w != "" {
			n.warnings = append(n.warnings, w)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if n.store, err = openStore(ctx, cfg, log); err != nil {
		return nil, err
	}
	if cfg.Retention > 0 {
		r, ok := n.store.(retainer)
		if !ok {
			return nil, errors.New("node: retention needs the PostgreSQL store (--postgres); the embedded store keeps everything")
		}
		if cfg.Retention < 48*time.Hour {
			return nil, fmt.Errorf("node: retention %v is shorter than two days: readings are dropped a day at a time", cfg.Retention)
		}
		n.retain = r
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cat := codes.New()
	if n.bus, err = openBus(ctx, cfg, log); err != nil {
		return nil, err
	}
	if c, ok := n.bus.(prometheus.Collector); ok {
		reg.MustRegister(c)
	}
	// Analytics events reach every node's live streams and alert lists, whichever node owns
	// the patient's partition and raised them.
	events, ok := n.bus.(iomt.Events)
	if !ok {
		return nil, fmt.Errorf("node: bus %T carries no events", n.bus)
	}
	if _, ok := n.bus.(owner); !ok {
		return nil, fmt.Errorf("node: bus %T does not tell which partitions this node owns", n.bus)
	}
	// Battery reports reach the alarm service through the registry ingest records them in.
	ing := ingest.New(cat, n.store, statusTap{Registry: n.store, events: events, log: log}, n.bus, log,
		ingest.NewMetrics(reg), ingest.Options{MaxFuture: cfg.MaxFuture})
	auth := ingest.Authenticator{Registry: n.store}
	// MQTT and HTTP ingest share one count of failed device authentications per source.
	throttle := ingest.NewThrottle(ingest.ThrottleOptions{Logger: log})

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	live := api.NewLive()
	if err := n.bus.Subscribe(runCtx, "", live.Deliver); err != nil {
		return nil, err
	}
	// The broker exists (without serving yet) before events arrive: device commands use it.
	n.broker, err = mqtt.New(n.mqttLn, ing, auth, mqtt.Options{MaxPacketSize: cfg.MaxPacketSize, Logger: log, Registerer: reg, Limits: cfg.MQTTLimits, Throttle: throttle,
		// A device's command ack goes to every node: the one that sent the command waits for it.
		OnCommandAck: func(device string, payload []byte) {
			data, err := json.Marshal(deviceCommand{Device: device, Payload: json.RawMessage(payload)})
			if err == nil {
				err = events.PublishEvent(runCtx, iomt.Event{Kind: eventDeviceAck, Time: time.Now(), Data: data})
			}
			if err != nil {
				log.Warn("device command ack not passed on", "device", device, "err", err)
			}
		}})
	if err != nil {
		return nil, err
	}
	alarms, err := n.startAlarms(runCtx, cfg.Alarms, cat, events, reg, log)
	if err != nil {
		return nil, err
	}
	n.alarms = alarms.svc

	recent := watch.NewRecent()
	err = events.SubscribeEvents(runCtx, func(ctx context.Context, e iomt.Event) {
		switch e.Kind {
		case eventDeviceCommand, eventDeviceAck:
			n.onDeviceEvent(alarms, e)
			return
		case eventDeviceAccess:
			n.onDeviceAccess(e)
			return
		case eventDeviceStatus:
			var st deviceStatus
			if json.Unmarshal(e.Data, &st) == nil {
				alarms.svc.Status(ctx, st.Tenant, st.Patient, st.Status)
			}
			return
		}
		alarms.svc.OnEvent(ctx, e)
		if service.Internal(e.Kind) {
			return
		}
		// Listed before streamed: a client told of an alert can read it back at once.
		if e.Kind == cgmAlertEvent {
			var a api.CGMAlert
			if err := json.Unmarshal(e.Data, &a); err == nil {
				recent.Add(e.Patient, a.Alert)
			}
		}
		live.Notify(e.Patient, e.Kind, e.Data)
	})
	if err != nil {
		return nil, err
	}

	// publish tells every node what an analysis found about a patient.
	publish := func(patient, kind string, at time.Time, v any) {
		data, err := json.Marshal(v)
		if err == nil {
			err = events.PublishEvent(runCtx, iomt.Event{Patient: patient, Kind: kind, Time: at, Data: data})
		}
		if err != nil {
			log.Warn("publish "+kind, "patient", patient, "err", err)
		}
	}

	// CGM alerts: one monitor per patient on the node owning its partition, fed by the bus.
	cgm, err := watch.NewCGM(glucose.DefaultSettings(), func(patient string, a glucose.Alert) {
		publish(patient, cgmAlertEvent, a.Time, api.CGMAlert{Patient: patient, Alert: a})
	}, log)
	if err != nil {
		return nil, err
	}
	cgm.Owns = n.owns(cgmGroup)
	cgm.Patients = n.store // each patient's own alert limits (iomt.Patient.CGMLimits)
	if err := n.bus.Subscribe(runCtx, cgmGroup, cgm.Deliver); err != nil {
		return nil, err
	}

	// ECG rhythm: one streaming monitor per patient's lead on the partition's owner; episodes
	// (AF, brady/tachycardia, pause, asystole, VF, lead-off, noise) go out as events.
	rhythm := watch.NewECG(func(r watch.Rhythm) {
		at := r.Onset
		if !r.Offset.IsZero() {
			at = r.Offset
		}
		publish(r.Patient, ecgRhythmEvent, at, r)
		switch r.Kind {
		case "lead-off", "noise", "saturation":
			// Alarm rules read signal problems as their own event, keyed by device.
			publish(r.Patient, alarm.SignalQualityEvent, at, map[string]any{"device": r.Device, "kind": r.Kind, "active": r.Active})
		}
	}, log)
	rhythm.Owns = n.owns(ecgGroup)
	// Each minute of good ECG becomes observations (heart rate, SDNN) like a NEWS2 score.
	rhythm.Minutes = func(m watch.ECGMinute) {
		if obs := m.Observations(); len(obs) > 0 {
			go n.storeDerived(runCtx, "ecg summary", m.Tenant, m.Patient, watch.ECGDevice, obs)
		}
	}
	if err := n.bus.Subscribe(runCtx, ecgGroup, rhythm.Deliver); err != nil {
		return nil, err
	}
	go rhythm.Run(runCtx, 15*time.Second) // also flushes leads silent for watch.DefaultECGSilence
	go cgm.Run(runCtx, time.Minute)

	// NEWS2: scored from each patient's latest observations on the partition's owner; a
	// complete score that changed becomes an observation (stored, streamed, exported), and
	// every assessment worth telling (incomplete ones say what is missing) goes out as an event.
	// Each patient is scored on the SpO2 scale of their record, read from the registry.
	scorer := watch.NewNEWS2(nil, func(sc watch.NEWS2Score) {
		publish(sc.Patient, news2Event, sc.Time, sc)
		if sc.Store {
			obs := iomt.Observation{Patient: sc.Patient, Device: watch.NEWS2Device, Code: watch.NEWS2Code,
				Time: sc.Time.UTC().Truncate(iomt.TimePrecision), Value: float64(sc.Assessment.Result.Total), Unit: "{score}"}
			go n.storeDerived(runCtx, "news2 score", sc.Tenant, sc.Patient, watch.NEWS2Device, []iomt.Observation{obs})
		}
	})
	scorer.Owns = n.owns(news2Group)
	scorer.Patients, scorer.Log = n.store, log
	if err := n.bus.Subscribe(runCtx, news2Group, scorer.Deliver); err != nil {
		return nil, err
	}
	go scorer.Run(runCtx, time.Minute)

	// The exporter subscribes before the broker accepts readings, so it misses none.
	var deadLetters http.Handler
	if x := cfg.FHIRExport; x.URL != "" {
		n.exporter, err = export.New(export.Config{
			Bus: n.bus, Catalog: cat, Codes: x.Codes, Registry: n.store, URL: x.URL, AllowHTTP: x.AllowHTTP,
			Token: x.Token, Username: x.Username, Password: x.Password,
			Dir: filepath.Join(cfg.DataDir, "fhir-export"), Logger: log, Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
		deadLetters = n.exporter.Handler()
		if err := n.exporter.Subscribe(runCtx); err != nil {
			return nil, err
		}
		n.exported = make(chan struct{})
		go func() {
			defer close(n.exported)
			if err := n.exporter.Run(runCtx); err != nil {
				log.Error("fhir export stopped", "err", err)
			}
		}()
	}
	// Alarms: the engine sees each owned patient's readings as they arrive, ticks every second.
	if err := n.bus.Subscribe(runCtx, alarmGroup, alarms.svc.Deliver); err != nil {
		return nil, err
	}
	go alarms.svc.Run(runCtx, time.Second)

	if err := n.broker.Serve(); err != nil {
		return nil, err
	}
	if n.retain != nil {
		go n.enforceRetention(runCtx, time.Hour)
	}
	if n.people, err = startPeople(runCtx, n.store, cfg, log); err != nil {
		return nil, err
	}
	fhirAPI, err := fhir.New(fhir.Config{Store: n.store, Catalog: cat, Logger: log,
		Principal: fhirPrincipal, Policy: n.people.policy, Auditor: n.people.auditor})
	if err != nil {
		return nil, err
	}
	ssoProvider, verifyJWT := n.people.ssoConfig()
	handler, err := api.New(api.Config{
		SSO: ssoProvider, VerifyJWT: verifyJWT,
		Store: n.store, Ingester: ing, Auth: auth, Catalog: cat, Live: live,
		Identity: n.people.identity, Policy: n.people.policy, Auditor: n.people.auditor, BootstrapToken: cfg.People.BootstrapToken,
		Logger: log, AuditTrail: n.store, Gatherer: reg,
		MQTTAddr: n.broker.Addr().String(), UI: web.Handler(), CGMAlerts: recent.Alerts, Cluster: n.clusterStatus,
		FHIR: fhirAPI, DeadLetters: deadLetters, Alarms: n.alarms, TLS: n.httpTLS != nil,
		Throttle: throttle, DeviceChanged: n.deviceChanged(events),
	})
	if err != nil {
		return nil, err
	}
	n.routes = handler.Routes()
	n.http = newHTTPServer(runCtx, handler, cfg.HTTPLimits, log)
	if n.httpTLS != nil {
		n.http.Handler = hsts(n.http.Handler)
		n.http.TLSConfig = n.httpTLS.ServerConfig()
		go func() { n.httpDone <- n.http.ServeTLS(n.httpLn, "", "") }()
	} else {
		go func() { n.httpDone <- n.http.Serve(n.httpLn) }()
	}
	log.Info("iomt node started", "http", n.URL(), "mqtt", n.MQTTAddr(), "mqtt_tls", mqttTLS != nil, "data", cfg.DataDir)
	for _, w := range n.warnings {
		log.Warn(w)
	}
	return n, nil
}

// cgmGroup is the bus group of the CGM alert monitors: stateful per patient, so each
// partition has one owner in a cluster.
const cgmGroup = "cgm-alerts"

// cgmAlertEvent is the live stream's event name for a CGM alert.
const cgmAlertEvent = "cgm-alert"

// ecgGroup is the bus group of the ECG rhythm monitors, stateful per patient like cgmGroup;
// ecgRhythmEvent names their episodes on live streams.
const (
	ecgGroup       = "ecg-rhythm"
	ecgRhythmEvent = "ecg-rhythm"
)

// news2Group scores NEWS2 per patient (one owner per partition); news2Event names the
// assessments on live streams, and tells the alarm engine each patient's SpO2 scale.
const (
	news2Group = "news2"
	news2Event = alarm.NEWS2Event
)

// storeDerived stores what an analysis computed (a NEWS2 score, an ECG minute) as the
// readings of its own device and puts the new ones on the bus, so that live streams and the
// EHR export see them as any reading. It runs outside the bus handler that produced them:
// publishing from inside a handler could wait on that same handler. Each reading is its own
// batch, so that one stored already (by another owner during a handover, or from a second
// ECG lead) is neither stored nor published again while the others are.
func (n *Node) storeDerived(ctx context.Context, what, tenant, patient, device string, obs []iomt.Observation) {
	received := time.Now().UTC()
	batches := make([]iomt.Batch, len(obs))
	for i, o := range obs {
		batches[i] = iomt.Batch{Tenant: tenant, Device: device, Patient: patient, Received: received, Observations: []iomt.Observation{o}}
	}
	dups, err := n.store.Append(ctx, batches)
	if err != nil {
		n.log.Error(what+" not stored", "patient", patient, "err", err)
		return
	}
	for i, b := range batches {
		if i < len(dups) && dups[i] > 0 {
			continue
		}
		if err := n.bus.Publish(ctx, b); err != nil {
			n.log.Warn(what+" not published", "patient", patient, "code", b.Observations[0].Code, "err", err)
		}
	}
}

// owner is a bus that shares groups' partitions between nodes and says which are this node's.
type owner interface {
	Owned(group string) []int
	Partition(patient string) int
}

// owns says whether this node owns a patient's partition of group; nil (every patient) on a
// bus that does not share partitions between nodes.
func (n *Node) owns(group string) func(patient string) bool {
	o, ok := n.bus.(owner)
	if !ok {
		return nil
	}
	return func(patient string) bool { return slices.Contains(o.Owned(group), o.Partition(patient)) }
}

// clusterStatus tells which node this is and which partitions of its stateful groups it owns.
func (n *Node) clusterStatus() api.ClusterStatus {
	st := api.ClusterStatus{Node: n.cfg.NodeID, Store: "embedded", Bus: "memory", Owned: map[string][]int{}}
	if n.cfg.Postgres != "" {
		st.Store = "postgres"
	}
	if n.cfg.NATS.URL != "" {
		st.Bus = "nats"
	}
	if o, ok := n.bus.(owner); ok {
		st.Owned[cgmGroup] = o.Owned(cgmGroup)
		st.Owned[ecgGroup] = o.Owned(ecgGroup)
		st.Owned[alarmGroup] = o.Owned(alarmGroup)
		st.Owned[news2Group] = o.Owned(news2Group)
	}
	return st
}

// retainer is a store that drops old readings a partition at a time.
type retainer interface {
	DropBefore(ctx context.Context, t time.Time) ([]string, error)
}

// enforceRetention drops what is older than the retention now and then every interval. Any
// node may do it: dropping a partition another node already dropped is a no-op.
func (n *Node) enforceRetention(ctx context.Context, interval time.Duration) {
	for {
		dropped, err := n.retain.DropBefore(ctx, time.Now().Add(-n.cfg.Retention))
		if err != nil && ctx.Err() == nil {
			n.log.Error("retention", "err", err)
		} else if len(dropped) > 0 {
			n.log.Info("retention: dropped old partitions", "partitions", dropped)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// HTTPAddr is the address the API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// MQTTAddr is the address the broker listens on.
func (n *Node) MQTTAddr() string { return n.broker.Addr().String() }

// SendCommand publishes a command (QoS 1) on a device's command topic; a device connected to
// this node and subscribed to it receives it.
func (n *Node) SendCommand(tenant, device string, payload []byte) error {
	return n.broker.SendCommand(tenant, device, payload)
}

// Store is the node's store, for in-process tools.
func (n *Node) Store() iomt.Store { return n.store }

// Close stops taking traffic, lets what is in flight finish, and closes the store.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
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
	if n.exporter != nil {
		if n.exported != nil {
			<-n.exported
		}
		errs = append(errs, n.exporter.Close())
	}
	if n.bus != nil {
		errs = append(errs, n.bus.Close())
	}
	if n.alarms != nil {
		// After the bus (no more changes come) and before the store (the queued ones are stored).
		n.alarms.Close()
	}
	if n.people != nil {
		// Before the store: the last checkpoint of the audit trail is written on close.
		errs = append(errs, n.people.close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
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
