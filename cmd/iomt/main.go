// Command iomt is the iomt platform in one binary: `iomt serve` runs a node (ingest, storage,
// API) on embedded defaults; more subcommands join as the platform grows.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/config"
	"github.com/iomt/iomt/identity/oidc"
	"github.com/iomt/iomt/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// IOMT_CPU_PROFILE profiles any command (the simulator and benches have no HTTP server).
	if path := os.Getenv("IOMT_CPU_PROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if code != 0 {
		pprof.StopCPUProfile()
		os.Exit(code)
	}
}

const usage = `iomt — an Internet of Medical Things platform

Usage: iomt <command> [flags]

Commands:
  audit     'iomt audit verify' checks the tamper-evident audit trail; 'iomt audit export' writes it as JSON lines
  bench     load test: 'iomt bench ingest' drives simulated devices over MQTT against a server
  cgm       CGM: 'iomt cgm report' (metrics, AGP report) and 'iomt cgm eval-predict'
  demo      a node and a simulated ward of 20 patients in one process, with the dashboard
  ecg       ECG analytics: 'iomt ecg eval --db DIR' scores the QRS and AF detectors on MIT-BIH
  gateway   the edge gateway: HL7/MLLP, BLE and SenML adapters, crash-safe spool, MQTT/TLS uplink
  gatt      'iomt gatt decode UUID HEX': decode a Bluetooth GATT health characteristic to JSON
  hl7       'iomt hl7 parse FILE': decode an HL7 v2 ORU^R01 (bare or MLLP-framed) to JSON
  migrate   apply the PostgreSQL schema migrations ('iomt serve --postgres' also does on start)
  news2     score NEWS2 (Royal College of Physicians 2017) from vital signs
  serve     run a node: MQTT and HTTP ingest, storage, REST API, dashboard
  sim       simulated patients and devices sending to a running server over MQTT
  user      'iomt user create': accounts on the store directly (the first administrator)
  version   print the version

Run 'iomt <command> -h' for a command's flags. The flags of serve, sim and demo can also be
set by IOMT_* environment variables (--data-dir: IOMT_DATA_DIR) or a YAML file given by --config.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr, getenv)
	case "user":
		return userCommand(ctx, args[1:], os.Stdin, stdout, stderr, getenv)
	case "audit":
		return auditCommand(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return benchCommand(ctx, args[1:], stdout, stderr)
	case "ecg":
		return ecgCommand(ctx, args[1:], stdout, stderr)
	case "news2":
		return news2Command(ctx, args[1:], stdout, stderr)
	case "cgm":
		return cgmCommand(ctx, args[1:], stdout, stderr)
	case "hl7":
		return hl7Command(ctx, args[1:], stdout, stderr)
	case "gatt":
		return gattCommand(ctx, args[1:], stdout, stderr)
	case "gateway":
		return gatewayCommand(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCommand(ctx, args[1:], stdout, stderr, getenv)
	case "sim":
		return simCommand(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "iomt: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		return fmt.Sprintf("iomt %s (%s)", v, bi.GoVersion)
	}
	return "iomt " + v
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.FileFlag, "", "YAML config file whose keys are these flags' names")
	dataDir := fs.String("data-dir", "iomt-data", "directory holding all of the node's data")
	httpAddr := fs.String("http-addr", ":8080", "address of the HTTP API")
	mqttAddr := fs.String("mqtt-addr", ":1883", "address of the embedded MQTT broker")
	mqttTLSCert := fs.String("mqtt-tls-cert", "", "PEM certificate (chain) for MQTT over TLS on --mqtt-addr (with --mqtt-tls-key; 8883 by convention)")
	mqttTLSKey := fs.String("mqtt-tls-key", "", "PEM private key for --mqtt-tls-cert")
	bootstrapFile := fs.String("bootstrap-token-file", "", "file holding a bootstrap bearer token with every permission (for provisioning; or set IOMT_BOOTSTRAP_TOKEN); none by default")
	idleTimeout := fs.Duration("idle-timeout", 15*time.Minute, "a session unused this long ends (automatic logoff)")
	sessionLifetime := fs.Duration("session-lifetime", 12*time.Hour, "a session ends this long after sign-in, however active")
	oidcConfig := fs.String("oidc-config", "", "single sign-on: the OpenID Connect provider and its claim mappings (YAML; see identity/oidc/README.md); the client secret from its client_secret_file or IOMT_OIDC_CLIENT_SECRET")
	mfaRoles := fs.String("mfa-roles", "", "roles that must sign in with a TOTP second factor, comma-separated (e.g. admin,clinician)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain): serve the API, FHIR and dashboard over HTTPS on --http-addr (with --tls-key; reloaded when the files change)")
	tlsKey := fs.String("tls-key", "", "PEM private key for --tls-cert")
	mqttClientCA := fs.String("mqtt-client-ca", "", "PEM CA bundle: devices and gateways may log in over MQTT TLS with a client certificate it verifies, whose subject CN is the device id (no password needed)")
	maxPacket := fs.Int("mqtt-max-packet", 1<<20, "largest MQTT packet accepted, in bytes")
	maxFuture := fs.Duration("max-future", 5*time.Minute, "readings timestamped further ahead of server time are refused")
	noSync := fs.Bool("no-sync", false, "do not fsync appends (survives a crash of the process, not of the machine)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go's profiler (/debug/pprof) on this address; keep it on loopback")
	postgres := fs.String("postgres", "", "PostgreSQL URL (postgres://user:pass@host:5432/db): store everything there instead of the data directory")
	natsURL := fs.String("nats", "", "NATS JetStream URL(s), comma-separated: the bus between nodes instead of the in-process one")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	natsCA := fs.String("nats-ca", "", "CA bundle that signs the NATS server's certificate")
	natsCert := fs.String("nats-cert", "", "client certificate for NATS mutual TLS (with --nats-key)")
	natsKey := fs.String("nats-key", "", "client key for NATS mutual TLS")
	replicas := fs.Int("nats-replicas", 1, "JetStream replicas of the stream and lease bucket (3 in a three-server NATS cluster)")
	retention := fs.Duration("retention", 0, "with --postgres: drop readings older than this (e.g. 8760h), a day at a time; 0 keeps everything")
	partitions := fs.Int("partitions", 16, "bus partitions (patients are spread over them); the same on every node")
	leaseTTL := fs.Duration("bus-lease-ttl", 5*time.Second, "how long a node that stops answering keeps its partitions before another takes them")
	nodeID := fs.String("node-id", "", "this node's name in a cluster (default: host name and a random suffix)")
	exportURL := fs.String("fhir-export-url", "", "FHIR R4 base URL of an EHR to push observations to (transaction bundles)")
	exportToken := fs.String("fhir-export-token", "", "bearer token for the EHR (prefer IOMT_FHIR_EXPORT_TOKEN to a flag)")
	exportUser := fs.String("fhir-export-user", "", "basic-auth user for the EHR")
	exportPassword := fs.String("fhir-export-password", "", "basic-auth password for the EHR (prefer IOMT_FHIR_EXPORT_PASSWORD)")
	exportCodes := fs.String("fhir-export-codes", "", "comma-separated codes to export (default: the vital signs)")
	exportAllowHTTP := fs.Bool("fhir-export-allow-http", false, "allow a plain http:// --fhir-export-url on another machine (patient data in clear)")
	alarmRules := fs.String("alarm-rules", "", "alarm rule set (YAML) for tenants without rules saved through the API (default: the built-in adult rules)")
	alarmRouting := fs.String("alarm-routing", "", "alarm routing (YAML: teams, rosters, escalation policies) until routing is saved through the API")
	webhookSecret := fs.String("alarm-webhook-secret", "", "HMAC secret that signs alarm webhooks (prefer IOMT_ALARM_WEBHOOK_SECRET)")
	insecureWebhooks := fs.Bool("allow-insecure-webhooks", false, "allow alarm webhooks to plain http:// URLs on other machines (alarms in clear)")
	smtpAddr := fs.String("smtp-addr", "", "SMTP relay (host:port) for alarm e-mail")
	smtpFrom := fs.String("smtp-from", "iomt@localhost", "sender of alarm e-mail")
	smtpUser := fs.String("smtp-user", "", "SMTP user (PLAIN authentication, over STARTTLS)")
	smtpPassword := fs.String("smtp-password", "", "SMTP password (prefer IOMT_SMTP_PASSWORD)")
	smtpCA := fs.String("smtp-ca", "", "CA bundle (PEM) that signs the SMTP relay's STARTTLS certificate (default: the system roots)")
	smtpPlain := fs.Bool("smtp-insecure-plaintext", false, "send alarm e-mail to a relay that offers no STARTTLS, in clear (refused by default)")
	commandTimeout := fs.Duration("command-timeout", 30*time.Second, "how long a device has to acknowledge a command")
	lim := limitFlags(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "iomt serve: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "iomt serve: %v\n", err)
		return 2
	}
	if *maxPacket < 1024 {
		fmt.Fprintf(stderr, "iomt serve: --mqtt-max-packet must be at least 1024 bytes, got %d\n", *maxPacket)
		return 2
	}
	token, err := readSecret(*bootstrapFile, BootstrapEnv, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "iomt serve: --bootstrap-token-file: %v\n", err)
		return 2
	}
	var sso *oidc.Config
	if *oidcConfig != "" {
		c, err := oidc.LoadConfig(*oidcConfig, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "iomt serve: --oidc-config: %v\n", err)
			return 2
		}
		c.Logger = log.With("component", "oidc")
		sso = &c
	}
	var mfa []iomt.Role
	for _, r := range splitList(*mfaRoles) {
		if !slices.Contains(iomt.Roles(), iomt.Role(r)) {
			fmt.Fprintf(stderr, "iomt serve: --mfa-roles: unknown role %q\n", r)
			return 2
		}
		mfa = append(mfa, iomt.Role(r))
	}
	if *debugAddr != "" {
		ln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			fmt.Fprintf(stderr, "iomt serve: --debug-addr: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
		go func() { _ = http.Serve(ln, mux) }()
	}
	n, err := node.Start(ctx, node.Config{
		DataDir: *dataDir, HTTPAddr: *httpAddr, MQTTAddr: *mqttAddr, MQTTTLSCert: *mqttTLSCert, MQTTTLSKey: *mqttTLSKey, MQTTClientCA: *mqttClientCA,
		People:      node.PeopleConfig{BootstrapToken: token, IdleTimeout: *idleTimeout, SessionLifetime: *sessionLifetime, MFARoles: mfa, OIDC: sso},
		HTTPTLSCert: *tlsCert, HTTPTLSKey: *tlsKey,
		MaxPacketSize: uint32(*maxPacket), MaxFuture: *maxFuture, NoSync: *noSync, Logger: log,
		Postgres: *postgres, NodeID: *nodeID,
		NATS: node.NATSConfig{URL: *natsURL, CredsFile: *natsCreds, TLSCA: *natsCA, TLSCert: *natsCert, TLSKey: *natsKey,
			Partitions: *partitions, Replicas: *replicas, LeaseTTL: *leaseTTL},
		Retention: *retention,
		FHIRExport: node.FHIRExportConfig{URL: *exportURL, Token: *exportToken, Username: *exportUser, Password: *exportPassword,
			Codes: splitList(*exportCodes), AllowHTTP: *exportAllowHTTP},
		Alarms: node.AlarmsConfig{RulesFile: *alarmRules, RoutingFile: *alarmRouting, WebhookSecret: *webhookSecret,
			SMTPAddr: *smtpAddr, SMTPFrom: *smtpFrom, SMTPUser: *smtpUser, SMTPPassword: *smtpPassword, CommandTimeout: *commandTimeout,
			AllowInsecureWebhooks: *insecureWebhooks, SMTPCAFile: *smtpCA, SMTPInsecurePlaintext: *smtpPlain},
		HTTPLimits: lim.http, MQTTLimits: lim.mqtt,
	})
	if err != nil {
		fmt.Fprintf(stderr, "iomt serve: %v\n", err)
		return 1
	}
	scheme := "http"
	if n.HTTPS() {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "iomt serving: API %s://%s  MQTT %s  data %s\n", scheme, displayAddr(n.HTTPAddr()), displayAddr(n.MQTTAddr()), *dataDir)
	for _, w := range n.Warnings() {
		fmt.Fprintf(stderr, "iomt serve: WARNING: %s\n", w)
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := n.Close(); err != nil {
		fmt.Fprintf(stderr, "iomt serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// displayAddr turns a wildcard listen address into one a user can paste.
func displayAddr(a string) string {
	for _, p := range []string{"[::]:", "0.0.0.0:"} {
		if strings.HasPrefix(a, p) {
			return "localhost:" + strings.TrimPrefix(a, p)
		}
	}
	return a
}

// newToken returns a random bearer token for the administrator.
func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}
