// Package uplink drains the gateway's spool to the cloud over MQTT 5: TLS with the server
// certificate verified, QoS 1, several entries in flight, exponential backoff with jitter, and
// nothing of its own to persist, because the spool is the state. An entry leaves the spool only
// once the broker has acknowledged it (PUBACK), so a crash or an outage at any moment costs at
// most a resend, which the server recognises by the per-device sequence number and by the
// readings' identity (device, code, time).
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt/certfile"
	"github.com/iomt/iomt/gateway/spool"
	"github.com/iomt/iomt/loopback"
)

// User properties of every PUBLISH, so the server can drop replays and see priorities.
const (
	PropSeq      = "seq"      // the entry's per-device sequence number (decimal)
	PropClass    = "class"    // alarm, spot or waveform
	PropReceived = "received" // when the gateway received it, Unix milliseconds (gateway clock)
)

// ServerTimeProperty is the CONNACK user property in which a server may give its clock (Unix
// milliseconds); iomt serve does. A broker that sends none (Mosquitto) gets no correction.
const ServerTimeProperty = "server-time"

// Config says where and how to send. Spool and URL are required.
type Config struct {
	Spool *spool.Spool
	// URL is mqtts://host:port (TLS) or mqtt://host:port (plain: refused to a host other
	// than this machine unless AllowPlaintext).
	URL string
	// AllowPlaintext lets mqtt:// reach another machine, for a network protected otherwise
	// (a VPN, an IPsec tunnel). Without TLS the gateway's password and every reading cross
	// the network in clear.
	AllowPlaintext bool
	// TLS verifies the server; nil means the system roots. See TLSConfig.
	TLS *tls.Config
	// Username and Password authenticate the gateway (in iomt serve: the gateway device's id
	// and MQTT password; elsewhere a token as password). Never logged.
	Username string
	Password []byte
	// ClientID defaults to Username: iomt serve accepts a device only under its own id
	// (empty with a client certificate and no username: the server assigns it).
	ClientID string

	// TopicPrefix and Tenant make the topic {prefix}{tenant}/devices/{device}/senml;
	// defaults "iomt/v1/" and "default", iomt serve's.
	TopicPrefix string
	Tenant      string

	// Window is how many spool entries are in flight at once (default 64). Entries of one
	// device are sent one after another, so they reach the broker in order; different
	// devices' entries are sent concurrently.
	Window int
	// BackoffMin and BackoffMax bound the wait after a failed connection or publish
	// (defaults 500 ms and 30 s); it doubles per failure, with full jitter.
	BackoffMin, BackoffMax time.Duration
	// PublishTimeout bounds the wait for one PUBACK (default 30 s).
	PublishTimeout time.Duration
	// KeepAlive is the MQTT keep-alive (default 30 s).
	KeepAlive time.Duration

	// SkewThreshold: a gateway-server clock offset smaller than this is ignored (default
	// 2 s); a larger one is added to every record time before publishing. Negative disables
	// the correction.
	SkewThreshold time.Duration
	// RejectedFile receives, as JSON lines, the entries the server refuses for good (see
	// permanent), fsynced before they leave the spool, so an operator can inspect and replay
	// them; empty means they are only logged.
	RejectedFile string

	// MaxAhead: a pack whose newest reading is dated further than this after the gateway
	// received it comes from a device whose clock runs ahead; its times are shifted so the
	// newest is the receive time (default 1 min). Negative disables it.
	MaxAhead time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // for tests; default time.Now
}

// Uplink publishes the spool's entries. Create it with New, run it with Run.
type Uplink struct {
	cfg   Config
	url   *url.URL
	log   *slog.Logger
	now   func() time.Time
	met   *metrics
	wake  chan struct{}
	topic func(device string) string

	mu        sync.Mutex
	connected bool
	downSince time.Time
	dialDone  time.Time

	offset atomic.Int64 // server minus gateway clock, nanoseconds; 0 below the threshold

	rejectMu sync.Mutex // one writer of RejectedFile at a time
}

// New checks cfg and returns an Uplink; nothing connects before Run.
func New(cfg Config) (*Uplink, error) {
	if cfg.Spool == nil {
		return nil, errors.New("uplink: Config needs a Spool")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("uplink: url %q: %w", cfg.URL, err)
	}
	switch u.Scheme {
	case "mqtts", "ssl", "tls":
		u.Scheme = "mqtts"
	case "mqtt", "tcp":
		u.Scheme = "mqtt"
	default:
		return nil, fmt.Errorf("uplink: url %q: scheme must be mqtts (TLS) or mqtt", cfg.URL)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("uplink: url %q: want scheme://host:port", cfg.URL)
	}
	if u.Scheme == "mqtt" && !cfg.AllowPlaintext && !loopback.Host(u.Hostname()) {
		return nil, fmt.Errorf("uplink: url %q is plaintext MQTT to another machine: the gateway's password and patient readings "+
			"would cross the network in clear; use mqtts://%s (TLS), or allow it explicitly (uplink.allow_plaintext: true, "+
			"--allow-plaintext-uplink) only where the network is protected otherwise", cfg.URL, u.Host)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.Username
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "iomt/v1/"
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "default"
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 500 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 30 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.SkewThreshold == 0 {
		cfg.SkewThreshold = 2 * time.Second
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	up := &Uplink{
		cfg: cfg, url: u, log: cfg.Logger.With("component", "uplink"), now: cfg.Now,
		wake: make(chan struct{}, 1),
	}
	prefix := cfg.TopicPrefix + cfg.Tenant + "/devices/"
	up.topic = func(device string) string { return prefix + device + "/senml" }
	up.downSince = up.now()
	m, err := newMetrics(cfg.Registerer, up)
	if err != nil {
		return nil, err
	}
	up.met = m
	return up, nil
}

// TLSConfig builds a client TLS configuration: caFile (PEM) replaces the system roots when
// set; certFile and keyFile, when set, are the client certificate for mutual TLS.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certfile.Pool(caFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: CA file: %w", err)
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("uplink: a client certificate needs both a certificate and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Notify tells the uplink the spool has something new, so it need not wait for its poll.
// It never blocks; adapters' sinks call it after a Put.
func (u *Uplink) Notify() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Connected reports whether the broker connection is up.
func (u *Uplink) Connected() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.connected
}

// DownSince reports since when the uplink has been down (since Run started, if it never
// connected); false while it is up. Edge alarms use it to decide that care is blind.
func (u *Uplink) DownSince() (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.downSince, !u.connected
}

// ClockOffset is the estimated server-minus-gateway clock offset being applied (0 when below
// the threshold or when the broker gives no time).
func (u *Uplink) ClockOffset() time.Duration { return time.Duration(u.offset.Load()) }

// Run connects and drains the spool until ctx is done; it returns nil then. Entries in flight
// at that moment stay in the spool and are sent again by the next Run.
func (u *Uplink) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cm, err := autopaho.NewConnection(runCtx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u.url},
		KeepAlive:                     uint16(u.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              u.connectBackoff,
		ConnectTimeout:                15 * time.Second,
		ConnectUsername:               u.cfg.Username,
		ConnectPassword:               u.cfg.Password,
		AttemptConnection:             u.dial,
		// The spool is the session: every connection starts clean, and what was in flight
		// on the last one is still in the spool and is sent again.
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			c.CleanStart = true
			c.Properties = nil
			return c, nil
		},
		OnConnectionUp:   u.up,
		OnConnectionDown: func() bool { u.down(errors.New("connection lost")); return true },
		OnConnectError: func(err error) {
			u.met.failures.WithLabelValues("connect").Inc()
			u.log.Warn("uplink connect failed", "url", u.url.Redacted(), "err", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:      u.cfg.ClientID,
			PacketTimeout: u.cfg.PublishTimeout,
		},
	})
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
	}()
	u.log.Info("uplink started", "url", u.url.Redacted(), "client_id", u.cfg.ClientID, "window", u.cfg.Window)

	failures := 0
	for ctx.Err() == nil {
		if err := cm.AwaitConnection(ctx); err != nil {
			break
		}
		entries, err := u.cfg.Spool.Next(u.cfg.Window)
		if err != nil {
			if errors.Is(err, spool.ErrClosed) {
				return fmt.Errorf("uplink: %w", err)
			}
			u.log.Error("reading the spool", "err", err)
		}
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
			case <-u.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		sent, failed := u.send(ctx, cm, entries)
		if len(sent) > 0 {
			if err := u.cfg.Spool.Ack(sent...); err != nil {
				// Sent but still spooled: they go again, and the server drops the replay.
				u.log.Error("removing sent entries from the spool", "entries", len(sent), "err", err)
				failed = true
			}
		}
		if !failed {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		wait := backoff(failures, u.cfg.BackoffMin, u.cfg.BackoffMax)
		failures++
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	u.mu.Lock()
	if u.connected {
		u.connected, u.downSince = false, u.now()
	}
	u.mu.Unlock()
	u.log.Info("uplink stopped")
	return nil
}

// send publishes a batch: each device's entries in order on its own goroutine, devices
// concurrently. It returns the entries to remove from the spool (acknowledged, or refused for
// good) and whether anything failed and must be retried.
func (u *Uplink) send(ctx context.Context, cm *autopaho.ConnectionManager, entries []spool.Entry) ([]spool.Entry, bool) {
	var order []string
	byDev := map[string][]spool.Entry{}
	for _, e := range entries {
		if _, ok := byDev[e.Device]; !ok {
			order = append(order, e.Device)
		}
		byDev[e.Device] = append(byDev[e.Device], e)
	}
	var (
		mu     sync.Mutex
		done   []spool.Entry
		failed bool
		wg     sync.WaitGroup
	)
	for _, dev := range order {
		wg.Add(1)
		go func(es []spool.Entry) {
			defer wg.Done()
			for _, e := range es {
				ok, remove := u.publish(ctx, cm, e)
				mu.Lock()
				if remove {
					done = append(done, e)
				}
				if !ok {
					failed = true
				}
				mu.Unlock()
				if !ok {
					return // later entries of this device wait, to keep its order
				}
			}
		}(byDev[dev])
	}
	wg.Wait()
	return done, failed
}

// publish sends one entry and waits for its PUBACK. ok is false when it must be tried again;
// remove is true when it must leave the spool (acknowledged, or refused for good).
func (u *Uplink) publish(ctx context.Context, cm *autopaho.ConnectionManager, e spool.Entry) (ok, remove bool) {
	payload, shift, err := correctTimes(e.Payload, e.Received, u.ClockOffset(), u.cfg.MaxAhead)
	if err != nil {
		// Not SenML the gateway can read: forward it as it is and let the server say why.
		u.log.Debug("pack times not corrected", "device", e.Device, "seq", e.Seq, "err", err)
		payload = e.Payload
	}
	if shift != 0 {
		u.met.corrected.Inc()
		u.log.Debug("pack times corrected", "device", e.Device, "seq", e.Seq, "shift", shift)
	}
	ctype := "application/senml+json"
	if len(payload) > 0 && payload[0] >= 0x80 {
		ctype = "application/senml+cbor"
	}
	pctx, cancel := context.WithTimeout(ctx, u.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	resp, err := cm.Publish(pctx, &paho.Publish{
		QoS: 1, Topic: u.topic(e.Device), Payload: payload,
		Properties: &paho.PublishProperties{ContentType: ctype, User: paho.UserProperties{
			{Key: PropSeq, Value: strconv.FormatUint(e.Seq, 10)},
			{Key: PropClass, Value: e.Class.String()},
			{Key: PropReceived, Value: strconv.FormatInt(e.Received.UnixMilli(), 10)},
		}},
	})
	u.met.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		u.met.published.WithLabelValues(e.Class.String()).Inc()
		return true, true
	}
	if ctx.Err() != nil {
		return false, false
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		reason := ""
		if resp.Properties != nil {
			reason = resp.Properties.ReasonString
		}
		if permanent(resp.ReasonCode) {
			// The server will refuse this pack whatever we do; keeping it would hold up every
			// later entry of the device (and, through the retries, every other device's).
			if err := u.reject(e, resp.ReasonCode, reason); err != nil {
				u.log.Error("keeping a refused pack: cannot record it", "device", e.Device, "seq", e.Seq, "err", err)
				return false, false
			}
			u.met.refused.Inc()
			u.log.Error("pack refused by the server; moved out of the spool", "device", e.Device, "seq", e.Seq,
				"code", fmt.Sprintf("0x%02x", resp.ReasonCode), "reason", reason, "file", u.cfg.RejectedFile)
			return true, true
		}
		u.met.failures.WithLabelValues("publish").Inc()
		u.log.Warn("pack not accepted; will retry", "device", e.Device, "seq", e.Seq,
			"code", fmt.Sprintf("0x%02x", resp.ReasonCode), "reason", reason)
		return false, false
	}
	u.met.failures.WithLabelValues("publish").Inc()
	u.log.Warn("publish failed; will retry", "device", e.Device, "seq", e.Seq, "err", err)
	return false, false
}

// permanent tells the PUBACK reason codes that no retry can change: the payload is bad (0x99:
// malformed, or the device has no patient) or too large (0x95), or the gateway may not publish
// for this device (0x87 not authorized, 0x90 topic invalid: an identity mapped to a device the
// server does not know, or of another tenant). Those go to RejectedFile rather than block the
// queue: iomt serve answers 0x80 ("retry") when the fault is its own.
func permanent(code byte) bool { return code == 0x99 || code == 0x95 || code == 0x87 || code == 0x90 }

// rejected is one line of RejectedFile.
type rejected struct {
	Device   string    `json:"device"`
	Seq      uint64    `json:"seq"`
	Class    string    `json:"class"`
	Received time.Time `json:"received"`
	Refused  time.Time `json:"refused"`
	Code     string    `json:"code"`
	Reason   string    `json:"reason,omitempty"`
	Payload  string    `json:"payload"` // as sent: SenML JSON text, or base64 of CBOR
	Base64   bool      `json:"base64,omitempty"`
}

// reject appends e to RejectedFile and syncs it.
func (u *Uplink) reject(e spool.Entry, code byte, reason string) error {
	if u.cfg.RejectedFile == "" {
		return nil
	}
	r := rejected{Device: e.Device, Seq: e.Seq, Class: e.Class.String(), Received: e.Received.UTC(), Refused: u.now().UTC(),
		Code: fmt.Sprintf("0x%02x", code), Reason: reason, Payload: string(e.Payload)}
	if len(e.Payload) > 0 && e.Payload[0] >= 0x80 {
		r.Payload, r.Base64 = base64.StdEncoding.EncodeToString(e.Payload), true
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	u.rejectMu.Lock()
	defer u.rejectMu.Unlock()
	f, err := os.OpenFile(u.cfg.RejectedFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dial opens the connection itself, to time it: the CONNACK's server time is compared with the
// midpoint between this moment and its arrival.
func (u *Uplink) dial(ctx context.Context, _ autopaho.ClientConfig, to *url.URL) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if to.Scheme == "mqtts" {
		c := u.cfg.TLS
		if c == nil {
			c = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c = c.Clone()
		if c.ServerName == "" {
			c.ServerName = to.Hostname()
		}
		conn, err = (&tls.Dialer{Config: c}).DialContext(dctx, "tcp", to.Host)
	} else {
		conn, err = (&net.Dialer{}).DialContext(dctx, "tcp", to.Host)
	}
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.dialDone = u.now()
	u.mu.Unlock()
	return &lockedConn{Conn: conn}, nil
}

// lockedConn makes each MQTT packet one uninterrupted write. paho writes a packet as several
// buffers, which a TLS connection sends as separate writes; concurrent publishes would
// interleave them and corrupt the stream. paho takes the lock of a connection that is a
// sync.Locker around each packet.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

func (u *Uplink) up(_ *autopaho.ConnectionManager, ca *paho.Connack) {
	now := u.now()
	u.mu.Lock()
	down := now.Sub(u.downSince)
	u.connected = true
	sent := u.dialDone
	u.mu.Unlock()
	u.met.connects.Inc()
	var offset time.Duration
	if ca != nil && ca.Properties != nil && !sent.IsZero() {
		if v := ca.Properties.User.Get(ServerTimeProperty); v != "" {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				u.log.Warn("server time in CONNACK unreadable", "value", v)
			} else {
				mid := sent.Add(now.Sub(sent) / 2)
				offset = time.UnixMilli(ms).Sub(mid)
				u.met.offset.Set(offset.Seconds())
			}
		}
	}
	applied := offset
	if u.cfg.SkewThreshold < 0 || offset.Abs() < u.cfg.SkewThreshold {
		applied = 0
	}
	if prev := time.Duration(u.offset.Swap(int64(applied))); prev != applied && applied != 0 {
		u.log.Warn("gateway clock differs from the server's; correcting record times",
			"offset", offset.Round(time.Millisecond), "threshold", u.cfg.SkewThreshold)
	}
	u.log.Info("uplink connected", "url", u.url.Redacted(), "was_down", down.Round(time.Millisecond),
		"clock_offset", offset.Round(time.Millisecond))
	u.Notify()
}

func (u *Uplink) down(err error) {
	u.mu.Lock()
	was := u.connected
	u.connected = false
	if was {
		u.downSince = u.now()
	}
	u.mu.Unlock()
	if was {
		u.log.Warn("uplink down", "err", err)
	}
}

// connectBackoff is autopaho's wait before connection attempt n of a reconnection; the first
// attempt goes at once.
func (u *Uplink) connectBackoff(attempt int) time.Duration {
	if attempt <= 0 {
		return 0
	}
	return backoff(attempt-1, u.cfg.BackoffMin, u.cfg.BackoffMax)
}

// backoff is the wait after the (failures+1)th failure in a row: a random duration between
// lo and min(hi, lo·2^failures), so gateways that lost the server together do not come back
// together ("full jitter" above the floor).
func backoff(failures int, lo, hi time.Duration) time.Duration {
	ceil := hi
	if failures < 30 {
		if c := lo << failures; c > 0 && c < hi {
			ceil = c
		}
	}
	if ceil <= lo {
		return lo
	}
	return lo + rand.N(ceil-lo+1)
}
