package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iomt/iomt/loopback"
)

// Config is the gateway's configuration file (YAML); docs/GATEWAY.md shows a complete one.
// Relative paths are taken from the directory of the file.
type Config struct {
	// DataDir holds the spool. Required.
	DataDir string `yaml:"data_dir"`
	// SpoolMaxBytes bounds the spool (payloads + ids + ~32 B per entry); 0 means 256 MiB.
	// When full, waveforms are dropped first, then spot readings; alarms never.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// IdentityFile maps BLE addresses and HL7 identifiers to platform devices (see
	// gateway/identity). Required when an adapter is enabled.
	IdentityFile string `yaml:"identity_file"`

	MLLP   MLLPConfig   `yaml:"mllp"`
	Uplink UplinkConfig `yaml:"uplink"`
	HTTP   HTTPConfig   `yaml:"http"`

	BLE   BLEConfig   `yaml:"ble"`
	Local LocalConfig `yaml:"local"`
	Edge  EdgeConfig  `yaml:"edge"`
}

// LocalConfig is SenML from local devices (gateway/local).
type LocalConfig struct {
	// HTTP mounts POST /senml and /senml/{name} on the HTTP listener.
	HTTP bool `yaml:"http"`
	// CoAPListen is a UDP host:port for CoAP (e.g. ":5683"); empty disables CoAP.
	CoAPListen string `yaml:"coap_listen"`
}

// EdgeConfig is local alarming while the uplink is down (gateway/edge).
type EdgeConfig struct {
	Enabled bool `yaml:"enabled"`
	// Threshold is how long the uplink must be down before local alerts fire (default 60s).
	Threshold time.Duration `yaml:"threshold"`
	// Realert is the least time between two alerts of one device and rule (default 5m).
	Realert time.Duration `yaml:"realert"`
	// WebhookURL receives each alert as a JSON POST; empty means log only. A plain http://
	// URL to another machine is refused unless AllowHTTPWebhook.
	WebhookURL string `yaml:"webhook_url"`
	// AllowHTTPWebhook lets alerts (patient readings) go to an http:// webhook on another
	// machine, in clear.
	AllowHTTPWebhook bool `yaml:"allow_http_webhook"`
	// RulesFile replaces the default rules (SpO2 < 85 %, HR > 150 or < 40, ...).
	RulesFile string `yaml:"rules_file"`
	// Name names this gateway in alerts.
	Name string `yaml:"name"`
}

// MLLPConfig is the listener for bedside monitors (HL7 v2 over MLLP).
type MLLPConfig struct {
	// Listen is host:port, e.g. ":2575"; empty disables the listener.
	Listen string `yaml:"listen"`
	// ReadTimeout closes connections idle for longer (default 5 min).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Application and Facility name the gateway in ACKs (MSH-3/4).
	Application string `yaml:"application"`
	Facility    string `yaml:"facility"`
}

// BLEConfig is the endpoint a BLE bridge posts notifications to, on the HTTP listener.
type BLEConfig struct {
	// Enabled mounts the bridge endpoint at /ble/v1/notifications.
	Enabled bool `yaml:"enabled"`
	// Timezone of the devices' wall-clock timestamps (IANA name); empty means UTC.
	Timezone string `yaml:"timezone"`
}

// UplinkConfig is the connection to the cloud's MQTT broker.
type UplinkConfig struct {
	// URL is mqtts://host:port (TLS, server certificate verified) or mqtt://host:port
	// (plain: only for a broker on the same host, unless AllowPlaintext). Required.
	URL string `yaml:"url"`
	// AllowPlaintext lets an mqtt:// URL reach another machine (also --allow-plaintext-uplink),
	// for a network protected otherwise (a VPN): the password and readings travel in clear.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// CAFile verifies the server (PEM); empty means the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for brokers that authenticate by it.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Username and Password (or PasswordFile, preferred: the first line of the file) log in;
	// for iomt serve, the gateway device's id and MQTT password. Never logged.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	ClientID     string `yaml:"client_id"`
	// Tenant and TopicPrefix make the topic {prefix}{tenant}/devices/{device}/senml
	// (defaults "default" and "iomt/v1/").
	Tenant      string `yaml:"tenant"`
	TopicPrefix string `yaml:"topic_prefix"`
	// Window is how many spool entries may be in flight (default 64).
	Window int `yaml:"window"`
	// BackoffMin and BackoffMax bound the exponential, jittered wait after failures
	// (defaults 500ms and 30s).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// SkewThreshold: a gateway-server clock offset below it is not corrected (default 2s;
	// negative disables). MaxAhead: packs dated further after their receipt are moved back
	// (device clock ahead; default 1m; negative disables).
	SkewThreshold time.Duration `yaml:"skew_threshold"`
	MaxAhead      time.Duration `yaml:"max_ahead"`
}

// HTTPConfig is the listener for /metrics, /healthz and HTTP adapters.
type HTTPConfig struct {
	// Listen is host:port; empty disables it. Keep it on loopback or a management network.
	Listen string `yaml:"listen"`
}

// ParseConfig reads a configuration; unknown keys and missing required ones are refused with
// the reason. dir resolves relative paths ("" leaves them as they are).
func ParseConfig(data []byte, dir string) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("gateway config: %w", err)
	}
	if dir != "" {
		for _, p := range []*string{&c.DataDir, &c.IdentityFile, &c.Uplink.CAFile, &c.Uplink.CertFile, &c.Uplink.KeyFile, &c.Uplink.PasswordFile, &c.Edge.RulesFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	return c, c.Validate()
}

// LoadConfig reads the configuration file at path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("gateway config: %w", err)
	}
	c, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks what can be checked without touching files or the network.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data_dir is required (the spool lives there)")
	}
	if c.SpoolMaxBytes < 0 {
		bad("spool_max_bytes must not be negative, got %d", c.SpoolMaxBytes)
	}
	if (c.MLLP.Listen != "" || c.BLE.Enabled || c.Local.HTTP || c.Local.CoAPListen != "") && c.IdentityFile == "" {
		bad("identity_file is required when an adapter (mllp, ble, local) is enabled")
	}
	if c.BLE.Enabled && c.HTTP.Listen == "" {
		bad("ble.enabled needs http.listen: the bridge posts to the HTTP listener")
	}
	if c.Local.HTTP && c.HTTP.Listen == "" {
		bad("local.http needs http.listen: devices post to the HTTP listener")
	}
	if c.Edge.Threshold < 0 || c.Edge.Realert < 0 {
		bad("edge: threshold and realert must not be negative")
	}
	if c.Edge.WebhookURL != "" && !strings.HasPrefix(c.Edge.WebhookURL, "http://") && !strings.HasPrefix(c.Edge.WebhookURL, "https://") {
		bad("edge.webhook_url %q must be an http:// or https:// URL", c.Edge.WebhookURL)
	} else if u, err := url.Parse(c.Edge.WebhookURL); c.Edge.WebhookURL != "" && (err != nil || u.Host == "") {
		bad("edge.webhook_url %q: not a URL with a host", c.Edge.WebhookURL)
	} else if c.Edge.WebhookURL != "" && loopback.PlainHTTP(u) && !c.Edge.AllowHTTPWebhook {
		bad("edge.webhook_url %q is plain http to another machine: alerts with patient readings would cross the network in clear; "+
			"use https://, or set edge.allow_http_webhook: true where the network is protected otherwise", c.Edge.WebhookURL)
	}
	u := c.Uplink
	if u.URL == "" {
		bad("uplink.url is required (mqtts://host:port)")
	}
	if u.Password != "" && u.PasswordFile != "" {
		bad("uplink: give password or password_file, not both")
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		bad("uplink: cert_file and key_file go together")
	}
	if u.Window < 0 {
		bad("uplink.window must not be negative, got %d", u.Window)
	}
	if u.BackoffMax != 0 && u.BackoffMin > u.BackoffMax {
		bad("uplink.backoff_min %v is larger than backoff_max %v", u.BackoffMin, u.BackoffMax)
	}
	if strings.ContainsAny(u.Tenant, "/+#") {
		bad("uplink.tenant %q must not contain /, + or #", u.Tenant)
	}
	if len(errs) > 0 {
		return fmt.Errorf("gateway config: %w", errors.Join(errs...))
	}
	return nil
}

// password returns the uplink password from the config or its file.
func (u UplinkConfig) password() ([]byte, error) {
	if u.PasswordFile == "" {
		return []byte(u.Password), nil
	}
	data, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("uplink password file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return nil, fmt.Errorf("uplink password file %s: first line is empty", u.PasswordFile)
	}
	return []byte(line), nil
}
