// Package mqtt is iomt's embedded MQTT broker (3.1.1 and 5), built on mochi-mqtt. Devices log
// in with the credentials the API issued, publish SenML to their own
// iomt/v1/{tenant}/devices/{device}/senml and subscribe to their own .../cmd; anything else is
// refused and logged with the reason. A pack is stored durably inside the broker's publish hook,
// before the PUBACK is written, so an acknowledged reading survives a crash of the server.
package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
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
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv  *mochi.Server
	hook *hook
	ln   net.Listener
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
	})
	h := &hook{ingest: in, auth: auth, log: log, sessions: map[*mochi.Client]*session{}, acks: map[ackKey]ackInfo{}}
	if o.Registerer != nil {
		h.met = newMetrics(o.Registerer)
	}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("mqtt: add hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return nil, fmt.Errorf("mqtt: add listener: %w", err)
	}
	return &Broker{srv: srv, hook: h, ln: ln}, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// Serve starts accepting connections and returns at once.
func (b *Broker) Serve() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("mqtt: serve: %w", err)
	}
	return nil
}

// Close disconnects every client and waits for publishes being stored to finish, so the
// store can be closed after it.
func (b *Broker) Close() error {
	err := b.srv.Close()
	b.hook.inflight.Wait()
	return err
}

// SendCommand publishes payload to a device's command topic (QoS 1).
func (b *Broker) SendCommand(tenant, device string, payload []byte) error {
	return b.srv.Publish(CommandTopic(tenant, device), payload, false, 1)
}

type session struct {
	dev       iomt.Device
	dataTopic string
	cmdTopic  string
}

type ackKey struct {
	cl *mochi.Client
	id uint16
}

type hook struct {
	mochi.HookBase
	ingest *ingest.Ingester
	auth   ingest.Authenticator
	log    *slog.Logger
	met    *metrics

	mu       sync.Mutex
	sessions map[*mochi.Client]*session
	acks     map[ackKey]ackInfo // outcome of a QoS 1 publish, until its PUBACK is encoded

	inflight sync.WaitGroup
}

func (h *hook) ID() string { return "iomt" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnPacketEncode,
		mochi.OnDisconnect,
	}, []byte{b})
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	remote := cl.Net.Remote
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dev, err := h.auth.MQTT(ctx, user, string(pk.Connect.Password))
	if err != nil {
		// The reason names the device but never the password.
		h.log.Warn("mqtt connect refused", "remote", remote, "client", cl.ID, "reason", err.Error())
		h.met.refused("bad_credentials")
		return false
	}
	s := &session{dev: dev, dataTopic: DataTopic(dev.Tenant, dev.ID), cmdTopic: CommandTopic(dev.Tenant, dev.ID)}
	h.mu.Lock()
	h.sessions[cl] = s
	h.mu.Unlock()
	h.log.Debug("mqtt device connected", "device", dev.ID, "remote", remote, "protocol", cl.Properties.ProtocolVersion)
	return true
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
	if write && topic == s.dataTopic || !write && topic == s.cmdTopic {
		return true
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
	s := h.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	h.inflight.Add(1)
	defer h.inflight.Done()
	defer func() {
		// A bug reached by one device's pack must not take the broker down for every device:
		// the pack is not acknowledged and the device is disconnected, so it resends later.
		if v := recover(); v != nil {
			h.log.Error("mqtt publish panic", "device", s.dev.ID, "panic", fmt.Sprint(v))
			cl.Stop(packets.ErrUnspecifiedError)
			pkx, err = pk, packets.ErrRejectPacket
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := h.ingest.Ingest(ctx, s.dev, pk.Payload, "mqtt")
	if err != nil && !errors.Is(err, ingest.ErrMalformed) && !errors.Is(err, ingest.ErrUnbound) {
		// Not stored: the device must not get a PUBACK that promises otherwise. MQTT 5
		// hears 0x80; a 3.1.1 client is disconnected and resends on reconnect.
		h.log.Error("mqtt publish not stored", "device", s.dev.ID, "err", err)
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			h.setAck(cl, pk.PacketID, ingest.Result{}, packets.ErrUnspecifiedError.Code, "not stored: server error, retry later")
			return pk, packets.CodeSuccessIgnore
		}
		cl.Stop(packets.ErrUnspecifiedError)
		return pk, packets.ErrRejectPacket
	}
	if err != nil {
		h.log.Warn("mqtt pack refused", "device", s.dev.ID, "reason", err.Error())
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
