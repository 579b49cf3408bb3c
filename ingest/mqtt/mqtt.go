// Package mqtt is iomt's embedded MQTT broker (3.1.1 and 5), built on mochi-mqtt. Devices log
// in with the credentials the API issued (or a client certificate naming them, over mutual
// TLS), under their own id as client id, publish SenML to their own
// iomt/v1/{tenant}/devices/{device}/senml and subscribe to their own .../cmd; an edge gateway
// (a device of kind "gateway") may also publish to the data topic of the devices registered
// behind it. Anything else is refused and logged with the reason. A pack is stored durably inside
// the broker's publish hook, before the PUBACK is written, so an acknowledged reading survives a
// crash of the server.
package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/certfile"
	"github.com/iomt/iomt/ingest"
)

// Options configure the broker.
type Options struct {
	MaxPacketSize uint32 // bytes; larger packets close the connection (0x95 in MQTT 5). Default 1 MiB.
	// MaxWritesPending bounds each client's outbound queue. mochi's default preallocates 8,192
	// slots per client (~90 KB idle); devices receive little, so 64 keeps memory small.
	MaxWritesPending int32
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	// OnCommandAck receives what a device publishes on its AckTopic.
	OnCommandAck func(device string, payload []byte)
	// Limits bound connections that have not logged in (zero fields: the defaults).
	Limits Limits
	// Throttle, if set, refuses sources that failed authentication too often (shared with
	// HTTP ingest).
	Throttle *ingest.Throttle
	// RecheckInterval is how often live sessions are checked against the registry, so that
	// a revocation whose notice (Broker.Revoke) was lost still ends the session; default
	// 1 minute, negative: never.
	RecheckInterval time.Duration
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv     *mochi.Server
	hook    *hook
	ln      net.Listener
	recheck time.Duration
	stop    chan struct{} // closed by Close: ends the recheck loop
	stopped sync.WaitGroup
}

// TopicPrefix is the root of every device topic.
const TopicPrefix = "iomt/v1/"

// DataTopic is where a device publishes SenML.
func DataTopic(tenant, device string) string {
	return TopicPrefix + tenant + "/devices/" + device + "/senml"
}

// CommandTopic is where a device receives commands.
func CommandTopic(tenant, device string) string {
	return TopicPrefix + tenant + "/devices/" + device + "/cmd"
}

// AckTopic is where a device acknowledges a command: JSON {"command": id, "status": "ok" or
// "rejected", "detail": "..."}.
func AckTopic(tenant, device string) string {
	return TopicPrefix + tenant + "/devices/" + device + "/ack"
}

// New returns a broker that serves ln once Serve is called.
func New(ln net.Listener, in *ingest.Ingester, auth ingest.Authenticator, o Options) (*Broker, error) {
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = 1 << 20
	}
	if o.MaxWritesPending == 0 {
		o.MaxWritesPending = 64
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacketSize
	caps.MaximumClientWritesPending = o.MaxWritesPending
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.WildcardSubAvailable = 0
	caps.SharedSubAvailable = 0
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// mochi logs packets (with their payloads, i.e. patient data) at debug and error level, so
	// it gets a logger that keeps only errors; refusals are logged by our hook instead.
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(levelFilter{log.Handler(), slog.LevelError}),
		InlineClient: true, // lets the node publish device commands
		// $SYS topics are for nobody here (devices may not subscribe to them), and each
		// update stops the world to read memory statistics: once an hour, not every second.
		SysTopicResendInterval: 3600,
	})
	h := &hook{srv: srv, ingest: in, auth: auth, log: log, onAck: o.OnCommandAck, throttle: o.Throttle,
		sessions: map[*mochi.Client]*session{}, acks: map[ackKey]ackInfo{}}
	if o.Registerer != nil {
		h.met = newMetrics(o.Registerer)
	}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("mqtt: add hook: %w", err)
	}
	h.guard = newGuard(ln, o.Limits, log, h.met)
	if err := srv.AddListener(h.guard); err != nil {
		return nil, fmt.Errorf("mqtt: add listener: %w", err)
	}
	if o.RecheckInterval == 0 {
		o.RecheckInterval = time.Minute
	}
	return &Broker{srv: srv, hook: h, ln: ln, recheck: o.RecheckInterval, stop: make(chan struct{})}, nil
}

// WithClientCA lets clients of a broker's TLS configuration present a certificate, verified
// against the CAs in clientCAFile (PEM), whose subject CN names the device it authenticates
// (mutual TLS); clients without one still log in with a password. An empty file changes nothing.
func WithClientCA(c *tls.Config, clientCAFile string) error {
	if clientCAFile == "" {
		return nil
	}
	pool, err := certfile.Pool(clientCAFile)
	if err != nil {
		return fmt.Errorf("mqtt client CA: %w", err)
	}
	c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	return nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// Serve starts accepting connections and returns at once.
func (b *Broker) Serve() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("mqtt: serve: %w", err)
	}
	if b.recheck > 0 {
		b.stopped.Add(1)
		go func() {
			defer b.stopped.Done()
			t := time.NewTicker(b.recheck)
			defer t.Stop()
			for {
				select {
				case <-b.stop:
					return
				case <-t.C:
					b.Recheck()
				}
			}
		}()
	}
	return nil
}

// Close disconnects every client and waits for publishes being stored to finish, so the
// store can be closed after it.
func (b *Broker) Close() error {
	// mochi v2.7.9's Close lists each listener's clients with GetByListener, which takes the
	// clients' read lock twice; with thousands of clients disconnecting, a Delete waiting for
	// the write lock between the two deadlocks it (mochi-mqtt/server#488, unfixed upstream).
	// Stop accepting first, so that devices reconnecting meanwhile neither keep the wait below
	// from settling nor add clients under Close, then disconnect everyone through GetAll (one
	// read lock) and wait until they are gone, so Close finds nobody to list. (mochi's own
	// close of the listener then fails quietly.)
	_ = b.ln.Close()
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.stopped.Wait()
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	// Closed clients leave the map asynchronously (those with a persistent session stay):
	// wait until all are closed and the map has stopped shrinking.
	last, still := -1, 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && still < 5; time.Sleep(10 * time.Millisecond) {
		all, open := b.srv.Clients.GetAll(), 0
		for _, cl := range all {
			if !cl.Net.Inline && !cl.Closed() {
				open++
			}
		}
		if open == 0 && len(all) == last {
			still++
		} else {
			still = 0
		}
		last = len(all)
	}
	err := b.srv.Close()
	b.hook.inflight.Wait()
	return err
}

// Revoke ends every live session of device on this broker at once (an MQTT 5 client hears
// DISCONNECT 0x87 with the reason) and makes gateways' sessions look the device up again before
// they next publish for it. The registry must already say why (credentials rotated or revoked,
// device disabled or deleted): the device's next CONNECT is judged against it. It returns the
// number of sessions ended. Each node's broker must be told (see node/).
func (b *Broker) Revoke(device, reason string) int {
	b.hook.forgetTarget(device)
	var end []*mochi.Client
	b.hook.mu.Lock()
	for cl, s := range b.hook.sessions {
		if s.dev.ID == device && !cl.Closed() {
			end = append(end, cl)
		}
	}
	b.hook.mu.Unlock()
	for _, cl := range end {
		b.hook.log.Warn("mqtt session ended", "device", device, "remote", cl.Net.Remote, "reason", reason)
		b.hook.met.refused("revoked")
		_ = b.srv.DisconnectClient(cl, packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "not authorized: " + reason})
	}
	return len(end)
}

// Forget makes gateways' sessions look device up again before they next publish for it (its
// gateway or state changed); the device's own sessions go on.
func (b *Broker) Forget(device string) { b.hook.forgetTarget(device) }

// Recheck reads the device of every live session from the registry and ends the sessions of
// devices that may no longer connect as they did: deleted, disabled, revoked, or (for a
// password session) given a new password. It backs up Revoke, whose notice can be lost between
// nodes; Serve runs it every RecheckInterval. Gateways' cached targets are dropped too.
func (b *Broker) Recheck() {
	h := b.hook
	h.mu.Lock()
	sessions := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		sessions = append(sessions, s)
		if s.gateway {
			clear(s.targets)
		}
	}
	h.mu.Unlock()
	for _, s := range sessions {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := h.auth.Registry.Device(ctx, s.dev.ID)
		cancel()
		var why string
		switch {
		case errors.Is(err, iomt.ErrNotFound):
			why = "device deleted"
		case err != nil:
			h.log.Warn("mqtt session recheck", "device", s.dev.ID, "err", err)
			continue
		case d.Disabled:
			why = "device disabled"
		case ingest.Revoked(d):
			why = "credentials revoked"
		case !s.byCert && !bytes.Equal(d.MQTTPasswordHash, s.dev.MQTTPasswordHash):
			why = "credentials rotated"
		default:
			continue
		}
		h.log.Warn("mqtt session ended", "device", s.dev.ID, "remote", s.cl.Net.Remote, "reason", why, "by", "recheck")
		h.met.refused("revoked")
		_ = b.srv.DisconnectClient(s.cl, packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "not authorized: " + why})
	}
}

// SendCommand publishes payload to a device's command topic (QoS 1).
func (b *Broker) SendCommand(tenant, device string, payload []byte) error {
	return b.srv.Publish(CommandTopic(tenant, device), payload, false, 1)
}

type session struct {
	cl        *mochi.Client
	dev       iomt.Device
	byCert    bool // authenticated by a client certificate, not a password
	dataTopic string
	cmdTopic  string
	ackTopic  string
	// gateway is set for a device of kind GatewayKind: it publishes on behalf of the devices
	// of its tenant. targets caches the devices it was allowed to publish for, by data topic,
	// for this connection (as a device's own record is cached for its connection).
	gateway bool
	targets map[string]iomt.Device
}

// GatewayKind is the registry kind of an edge gateway: it logs in with its own credentials and
// may publish to the data topic of the enabled devices registered behind it (whose
// iomt.Device.Gateway is its id); the pack is ingested as that device's.
const GatewayKind = "gateway"

// ServerTimeProperty is the MQTT 5 user property of a CONNACK that carries the server's clock
// (Unix milliseconds), so a gateway can estimate its clock offset without NTP.
const ServerTimeProperty = "server-time"

type ackKey struct {
	cl *mochi.Client
	id uint16
}

type hook struct {
	mochi.HookBase
	srv      *mochi.Server
	throttle *ingest.Throttle
	ingest   *ingest.Ingester
	auth     ingest.Authenticator
	log      *slog.Logger
	met      *metrics
	onAck    func(device string, payload []byte)
	guard    *guard

	mu       sync.Mutex
	sessions map[*mochi.Client]*session
	acks     map[ackKey]ackInfo // outcome of a QoS 1 publish, until its PUBACK is encoded

	inflight sync.WaitGroup
}

func (h *hook) ID() string { return "iomt" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnPacketEncode,
		mochi.OnDisconnect,
	}, []byte{b})
}

// Connection refusals: the MQTT 5 reason (with our own reason string) and the 3.1.1 return
// code mochi maps it to (3.1.1 has no reason strings, and mochi maps only its own codes).
var (
	refuseCredentials = [2]packets.Code{{Code: packets.ErrBadUsernameOrPassword.Code, Reason: "bad user name or password"}, packets.ErrBadUsernameOrPassword}
	refuseClientID    = [2]packets.Code{{Code: packets.ErrClientIdentifierNotValid.Code, Reason: "client identifier not valid: use the device's id"}, packets.ErrClientIdentifierNotValid}
	refuseThrottled   = [2]packets.Code{{Code: packets.ErrConnectionRateExceeded.Code, Reason: "too many failed authentications from this address: retry later"}, packets.ErrBadUsernameOrPassword}
	refuseUnavailable = [2]packets.Code{packets.ErrServerUnavailable, packets.ErrServerUnavailable}
)

// refuse answers a CONNECT with a refusing CONNACK; the returned error makes mochi close the
// connection before any session exists, so nobody's session is taken over.
func (h *hook) refuse(cl *mochi.Client, codes [2]packets.Code, metric string) error {
	code := codes[0]
	if cl.Properties.ProtocolVersion < 5 {
		code = codes[1]
	}
	h.met.refused(metric)
	if err := h.srv.SendConnack(cl, code, false, nil); err != nil {
		return fmt.Errorf("refuse connection: %w", err)
	}
	return code
}

// OnConnect authenticates the device (client certificate or password), holds the client id to
// the device's own id and throttles sources that keep failing. It runs before mochi looks for
// an existing session under the client id, so a refused CONNECT takes over nothing. The
// session it records is what OnConnectAuthenticate then accepts.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	user := string(pk.Connect.Username)
	remote := cl.Net.Remote
	src := ingest.SourceOf(remote)
	if _, blocked := h.throttle.Blocked(src); blocked {
		// The block itself was logged once, when it began.
		return h.refuse(cl, refuseThrottled, "throttled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, byCert := verifiedCommonName(cl.Net.Conn)
	var (
		dev iomt.Device
		err error
	)
	switch {
	case byCert && user != "" && user != cn:
		err = fmt.Errorf("%w: the client certificate is device %q's, the user name says %q", ingest.ErrBadCredentials, cn, user)
	case byCert:
		dev, err = h.auth.Certificate(ctx, cn)
	default:
		dev, err = h.auth.MQTT(ctx, user, string(pk.Connect.Password))
	}
	if err != nil {
		if !errors.Is(err, ingest.ErrBadCredentials) {
			h.log.Error("mqtt connect: device lookup", "remote", remote, "device", user, "err", err)
			return h.refuse(cl, refuseUnavailable, "server_error")
		}
		// The reason names the device but never the password.
		claimed := user
		if byCert {
			claimed = cn
		}
		h.log.Warn("mqtt connect refused", "remote", remote, "device", claimed, "client", cl.ID, "certificate", byCert, "reason", err.Error())
		h.throttle.Failed(src, claimed, "mqtt")
		return h.refuse(cl, refuseCredentials, "bad_credentials")
	}
	switch pk.Connect.ClientIdentifier {
	case dev.ID:
	case "":
		// The server assigns the id (MQTT 5 tells the client): the device's own.
		cl.ID = dev.ID
		if cl.Properties.ProtocolVersion == 5 {
			cl.Properties.Props.AssignedClientID = dev.ID
		}
	default:
		h.log.Warn("mqtt connect refused", "remote", remote, "device", dev.ID, "client", pk.Connect.ClientIdentifier,
			"reason", fmt.Sprintf("client id %q is not the device's id %q: a device may connect only under its own id", pk.Connect.ClientIdentifier, dev.ID))
		return h.refuse(cl, refuseClientID, "client_id")
	}
	s := &session{cl: cl, dev: dev, byCert: byCert, dataTopic: DataTopic(dev.Tenant, dev.ID), cmdTopic: CommandTopic(dev.Tenant, dev.ID), ackTopic: AckTopic(dev.Tenant, dev.ID)}
	if dev.Kind == GatewayKind {
		s.gateway, s.targets = true, map[string]iomt.Device{}
	}
	h.mu.Lock()
	h.sessions[cl] = s
	h.mu.Unlock()
	h.guard.loggedIn(cl.Net.Conn)
	h.log.Debug("mqtt device connected", "device", dev.ID, "remote", remote, "protocol", cl.Properties.ProtocolVersion, "certificate", byCert)
	return nil
}

// verifiedCommonName returns the subject CN of a client certificate the TLS handshake verified
// against the configured client CA (none when TLS is off, no CA is configured or the client
// sent no certificate).
func verifiedCommonName(c net.Conn) (string, bool) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return "", false
	}
	return st.VerifiedChains[0][0].Subject.CommonName, true
}

// OnConnectAuthenticate accepts the clients OnConnect authenticated.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	return h.session(cl) != nil
}

func (h *hook) session(cl *mochi.Client) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[cl]
}

func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	s := h.session(cl)
	if s == nil {
		return false
	}
	if write && (topic == s.dataTopic || topic == s.ackTopic) || !write && topic == s.cmdTopic {
		return true
	}
	if write && s.gateway {
		return h.gatewayACL(s, topic)
	}
	verb, own := "publish to", s.dataTopic
	if !write {
		verb, own = "subscribe to", s.cmdTopic
	}
	h.log.Warn("mqtt topic refused", "device", s.dev.ID, "reason",
		fmt.Sprintf("device %s may not %s %q (its own topic is %q)", s.dev.ID, verb, topic, own))
	h.met.refused("foreign_topic")
	return false
}

func (h *hook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	h.mu.Lock()
	s := h.sessions[cl]
	delete(h.sessions, cl)
	for k := range h.acks {
		if k.cl == cl {
			delete(h.acks, k)
		}
	}
	h.mu.Unlock()
	if s == nil {
		return
	}
	var code packets.Code
	if err != nil && errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code && code != packets.ErrServerShuttingDown {
		h.log.Warn("mqtt device disconnected", "device", s.dev.ID, "reason", code.Reason)
		if code == packets.ErrPacketTooLarge {
			h.met.refused("too_large")
		}
		return
	}
	h.log.Debug("mqtt device disconnected", "device", s.dev.ID, "err", err)
}

// OnPublish stores the pack before mochi writes the PUBACK. It always returns
// CodeSuccessIgnore (or an error) so mochi acknowledges without relaying device data to
// other subscribers; the reason code and string of the PUBACK are set in OnPacketEncode.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (pkx packets.Packet, err error) {
	if cl.Net.Inline {
		return pk, nil // the server's own publish (a command to a device), not a device's data
	}
	s := h.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	dev := s.dev
	if pk.TopicName == s.ackTopic {
		// A command acknowledgement is not data: it goes to whoever waits for it.
		if h.onAck != nil {
			h.onAck(dev.ID, pk.Payload)
		}
		return pk, packets.CodeSuccessIgnore
	}
	if s.gateway && pk.TopicName != s.dataTopic {
		// OnACLCheck ran first and cached the device the topic names, unless the registry
		// could not be read then: that is the server's fault, so the gateway hears "retry".
		t, err := h.gatewayTarget(s, pk.TopicName)
		if err != nil {
			if pk.FixedHeader.Qos > 0 && cl.Properties.ProtocolVersion == 5 {
				h.setAck(cl, pk.PacketID, ingest.Result{}, packets.ErrUnspecifiedError.Code, "not stored: server error, retry later")
				return pk, packets.CodeSuccessIgnore
			}
			cl.Stop(packets.ErrUnspecifiedError)
			return pk, packets.ErrRejectPacket
		}
		dev = t
	}
	h.inflight.Add(1)
	defer h.inflight.Done()
	defer func() {
		// A bug reached by one device's pack must not take the broker down for every device:
		// the pack is not acknowledged and the device is disconnected, so it resends later.
		if v := recover(); v != nil {
			h.log.Error("mqtt publish panic", "device", dev.ID, "panic", fmt.Sprint(v))
			cl.Stop(packets.ErrUnspecifiedError)
			pkx, err = pk, packets.ErrRejectPacket
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := h.ingest.Ingest(ctx, dev, pk.Payload, "mqtt")
	if err != nil && !errors.Is(err, ingest.ErrMalformed) && !errors.Is(err, ingest.ErrUnbound) {
		// Not stored: the device must not get a PUBACK that promises otherwise. MQTT 5
		// hears 0x80; a 3.1.1 client is disconnected and resends on reconnect.
		h.log.Error("mqtt publish not stored", "device", dev.ID, "err", err)
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			h.setAck(cl, pk.PacketID, ingest.Result{}, packets.ErrUnspecifiedError.Code, "not stored: server error, retry later")
			return pk, packets.CodeSuccessIgnore
		}
		cl.Stop(packets.ErrUnspecifiedError)
		return pk, packets.ErrRejectPacket
	}
	if err != nil {
		h.log.Warn("mqtt pack refused", "device", dev.ID, "reason", err.Error())
		if pk.FixedHeader.Qos > 0 {
			h.setAck(cl, pk.PacketID, res, packets.ErrPayloadFormatInvalid.Code, err.Error())
		}
		return pk, packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Qos > 0 {
		code := packets.CodeSuccess.Code
		if res.Accepted == 0 && res.Duplicates == 0 && len(res.Refused) > 0 {
			code = packets.ErrPayloadFormatInvalid.Code
		}
		h.setAck(cl, pk.PacketID, res, code, "")
	}
	return pk, packets.CodeSuccessIgnore
}

type ackInfo struct {
	code   byte
	reason string
}

func (h *hook) setAck(cl *mochi.Client, id uint16, res ingest.Result, code byte, reason string) {
	if cl.Properties.ProtocolVersion != 5 {
		return
	}
	if reason == "" && len(res.Refused) > 0 {
		reason = res.Summary(maxReason)
	}
	if reason == "" && code == packets.CodeSuccess.Code {
		return
	}
	h.mu.Lock()
	h.acks[ackKey{cl, id}] = ackInfo{code: code, reason: reason}
	h.mu.Unlock()
}

// maxReason keeps PUBACK reason strings well inside small clients' receive limits.
const maxReason = 1024

func (h *hook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack {
		if cl.Properties.ProtocolVersion == 5 && pk.ReasonCode == packets.CodeSuccess.Code {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{
				Key: ServerTimeProperty, Val: strconv.FormatInt(time.Now().UnixMilli(), 10)})
		}
		return pk
	}
	if pk.FixedHeader.Type != packets.Puback {
		return pk
	}
	k := ackKey{cl, pk.PacketID}
	h.mu.Lock()
	r, ok := h.acks[k]
	delete(h.acks, k)
	h.mu.Unlock()
	if !ok {
		return pk
	}
	pk.ReasonCode = r.code
	reason := r.reason
	// The client's Maximum Packet Size must not be exceeded [MQTT-3.1.2-25]; drop the string
	// rather than the acknowledgement.
	if max := cl.Properties.Props.MaximumPacketSize; max == 0 || uint32(len(reason))+16 < max {
		pk.Properties.ReasonString = reason
	}
	return pk
}

// errRefused marks a gateway topic the gateway may not publish to (as opposed to a registry
// that could not be read).
var errRefused = errors.New("refused")

// gatewayACL decides whether gateway session s may publish to topic: the data topic of an
// enabled device of its own tenant registered behind this gateway (iomt.Device.Gateway). Refusals are logged with the
// reason and counted as foreign topics. When the registry cannot be read, the publish is let
// through to OnPublish, which answers "server error, retry" rather than "not authorized".
func (h *hook) gatewayACL(s *session, topic string) bool {
	_, err := h.gatewayTarget(s, topic)
	if err == nil {
		return true
	}
	if !errors.Is(err, errRefused) {
		h.log.Error("mqtt gateway target lookup", "device", s.dev.ID, "topic", topic, "err", err)
		return true
	}
	h.log.Warn("mqtt topic refused", "device", s.dev.ID, "gateway", true, "reason", err.Error())
	h.met.refused("foreign_topic")
	return false
}

// forgetTarget drops device from every gateway session's cache of targets.
func (h *hook) forgetTarget(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		for topic, d := range s.targets {
			if d.ID == device {
				delete(s.targets, topic)
			}
		}
	}
}

// gatewayTarget returns the device gateway session s publishes for on topic, from the
// session's cache or the registry. The error matches errRefused when the gateway may not.
func (h *hook) gatewayTarget(s *session, topic string) (iomt.Device, error) {
	h.mu.Lock()
	dev, ok := s.targets[topic]
	h.mu.Unlock()
	if ok {
		return dev, nil
	}
	refuse := func(reason string) (iomt.Device, error) {
		return iomt.Device{}, fmt.Errorf("%w: gateway %s may not publish to %q: %s", errRefused, s.dev.ID, topic, reason)
	}
	tenant, id, ok := parseDataTopic(topic)
	if !ok {
		return refuse("not a device data topic (" + DataTopic("{tenant}", "{device}") + ")")
	}
	if tenant != s.dev.Tenant {
		return refuse(fmt.Sprintf("tenant %q is not the gateway's (%q)", tenant, s.dev.Tenant))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dev, err := h.auth.Registry.Device(ctx, id)
	switch {
	case errors.Is(err, iomt.ErrNotFound):
		return refuse(fmt.Sprintf("unknown device %q", id))
	case err != nil:
		return iomt.Device{}, fmt.Errorf("looking up device %s: %w", id, err)
	case dev.Tenant != s.dev.Tenant:
		return refuse(fmt.Sprintf("device %s belongs to another tenant", id))
	case dev.Kind == GatewayKind:
		return refuse(fmt.Sprintf("device %s is a gateway, not a device a gateway speaks for", id))
	case dev.Gateway == "":
		return refuse(fmt.Sprintf("device %s is registered to no gateway", id))
	case dev.Gateway != s.dev.ID:
		return refuse(fmt.Sprintf("device %s is registered to another gateway", id))
	case dev.Disabled:
		return refuse(fmt.Sprintf("device %s is disabled", id))
	}
	h.mu.Lock()
	s.targets[topic] = dev
	h.mu.Unlock()
	return dev, nil
}

// parseDataTopic splits iomt/v1/{tenant}/devices/{device}/senml.
func parseDataTopic(topic string) (tenant, device string, ok bool) {
	rest, ok := strings.CutPrefix(topic, TopicPrefix)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "devices" || parts[3] != "senml" || parts[0] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[0], parts[2], true
}
