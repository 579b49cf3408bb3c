package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Client is a lean MQTT 5 publisher for a simulated device: CONNECT with credentials, QoS 1
// PUBLISH pipelined up to a window of unacknowledged packets, PUBACK reason codes and reason
// strings reported, PINGREQ when idle, and every unacknowledged publish sent again after a
// reconnect. It can also subscribe (QoS 1, on every connect) to a few topics, such as the
// device's command topic, and hand what arrives there to OnMessage. Control packets are encoded and decoded with mochi-mqtt's packets package; the
// hot path (PUBLISH out, PUBACK in) is written by hand over a buffered connection, because a
// general client (Paho) costs ~100 µs of CPU per publish and one process must drive ten
// thousand devices.
//
// A Client is safe for concurrent use. Connect (again) after the connection is lost (Lost);
// Publish queues while disconnected.
type Client struct {
	o ClientOptions

	mu       sync.Mutex
	conn     net.Conn
	lost     chan error // of the current connection; receives why it ended
	queue    []*outMsg  // unacknowledged publishes in order; the first sent of them are on the wire
	sent     int
	window   int
	nextID   uint16
	writing  bool // a goroutine is writing the queue out; others leave it to it
	needPing bool
	pingSent time.Time // of an unanswered PINGREQ
	lastSend time.Time
	free     []*outMsg
	space    chan struct{} // signalled when the queue shrinks
	done     chan struct{} // closed by Close
	closed   bool
	timer    *time.Timer
}

// ClientOptions configure a Client.
type ClientOptions struct {
	Addr      string // host:port of the broker
	ClientID  string
	Username  string
	Password  string
	KeepAlive time.Duration // default 60 s
	Window    int           // QoS 1 publishes in flight; default 8, at most the server's Receive Maximum
	MaxQueued int           // publishes held (in flight and waiting) before Publish blocks; default 64
	// AckTimeout is how long a publish may go unacknowledged before the connection counts as
	// dead and is replaced (its publishes sent again); default 60 s. Short timeouts turn a
	// server that is merely behind into one that must store everything twice.
	AckTimeout time.Duration
	// OnAck is called, from the connection's reader, for every PUBACK: its reason code
	// (≥ 0x80 is a refusal) and reason string, and what was given to Publish.
	OnAck func(Ack)
	// Subscribe lists topic filters subscribed to at QoS 1 on every connect (the session is
	// clean, so a reconnect must subscribe again); Connect returns once the broker has
	// answered. A filter the broker refuses is logged and the connection kept: a device
	// that cannot hear commands still sends its readings.
	Subscribe []string
	// OnMessage is called, from the connection's reader, with every PUBLISH the broker sends
	// (after it has been acknowledged). The payload is the callee's. It must not block, nor
	// call Publish, which may wait for PUBACKs that this same reader has to process.
	OnMessage func(topic string, payload []byte)
	Logger    *slog.Logger
}

// Ack is the server's answer to one publish.
type Ack struct {
	Code   byte
	Reason string
	Queued time.Time // when Publish was called
	Meta   int       // as given to Publish
}

// ConnectError is a CONNACK with a failure reason code.
type ConnectError struct {
	Code   byte
	Reason string
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect refused: 0x%02x %s", e.Code, e.Reason)
}

// ErrClosed is returned by Publish and Connect after Close.
var ErrClosed = errors.New("mqtt client closed")

type outMsg struct {
	pkt    []byte // the whole PUBLISH packet; its id is patched in when sent
	idAt   int    // offset of the packet identifier in pkt
	id     uint16
	queued time.Time
	sent   time.Time // last written
	meta   int
}

// NewClient returns a client that is not connected yet.
func NewClient(o ClientOptions) *Client {
	if o.KeepAlive <= 0 {
		o.KeepAlive = 60 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 8
	}
	if o.MaxQueued < o.Window {
		o.MaxQueued = max(64, o.Window)
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, window: o.Window, space: make(chan struct{}, 1), done: make(chan struct{})}
}

// Connect dials the broker, logs in and starts sending what is queued, first the publishes
// a lost connection left unacknowledged. A refusal is a *ConnectError.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	closed, old := c.closed, c.conn
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if old != nil {
		return errors.New("mqtt: already connected")
	}
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", c.o.Addr)
	if err != nil {
		return fmt.Errorf("mqtt: dial: %w", err)
	}
	ca, r, err := c.handshake(ctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return ErrClosed
	}
	c.conn = conn
	c.lost = make(chan error, 1)
	c.window = c.o.Window
	if rm := int(ca.Properties.ReceiveMaximum); rm > 0 && rm < c.window {
		c.window = rm
	}
	// A new session: whatever was sent before goes again, with fresh identifiers; the
	// server drops the readings it already stored.
	c.sent = 0
	c.pingSent = time.Time{}
	c.lastSend = time.Now()
	go c.read(conn, r, c.lost)
	period := c.tickPeriod()
	if c.timer == nil {
		c.timer = time.AfterFunc(period, c.tick)
	} else {
		c.timer.Reset(period)
	}
	c.kickLocked()
	return nil
}

// handshake sends CONNECT and reads CONNACK.
func (c *Client) handshake(ctx context.Context, conn net.Conn) (packets.Packet, *bufio.Reader, error) {
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) > 30*time.Second {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        uint16(c.o.KeepAlive / time.Second),
			ClientIdentifier: c.o.ClientID,
			UsernameFlag:     c.o.Username != "",
			Username:         []byte(c.o.Username),
			PasswordFlag:     c.o.Password != "",
			Password:         []byte(c.o.Password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return packets.Packet{}, nil, fmt.Errorf("mqtt: encode connect: %w", err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return packets.Packet{}, nil, fmt.Errorf("mqtt: connect: %w", err)
	}
	r := bufio.NewReaderSize(conn, 512)
	var body []byte
	typ, body, err := readPacket(r, body)
	if err != nil {
		if ctx.Err() != nil {
			return packets.Packet{}, nil, fmt.Errorf("mqtt: connack: %w", ctx.Err())
		}
		return packets.Packet{}, nil, fmt.Errorf("mqtt: connack: %w", err)
	}
	if typ>>4 != packets.Connack {
		return packets.Packet{}, nil, fmt.Errorf("mqtt: expected CONNACK, got packet type %d", typ>>4)
	}
	ca := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Connack, Remaining: len(body)}}
	if err := ca.ConnackDecode(body); err != nil {
		return packets.Packet{}, nil, fmt.Errorf("mqtt: connack: %w", err)
	}
	if ca.ReasonCode >= 0x80 {
		return packets.Packet{}, nil, &ConnectError{Code: ca.ReasonCode, Reason: ca.Properties.ReasonString}
	}
	if err := c.subscribe(conn, r); err != nil {
		if ctx.Err() != nil {
			return packets.Packet{}, nil, fmt.Errorf("mqtt: subscribe: %w", ctx.Err())
		}
		return packets.Packet{}, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ca, r, nil
}

// subscribePacketID identifies the SUBSCRIBE sent while connecting: nothing else is in flight
// on the connection until its SUBACK has arrived, so no publish can share it.
const subscribePacketID = 1

// subscribe sends the SUBSCRIBE of o.Subscribe, if any, and waits for its SUBACK. A PUBLISH
// that overtakes the SUBACK is handled as usual.
func (c *Client) subscribe(conn net.Conn, r *bufio.Reader) error {
	if len(c.o.Subscribe) == 0 {
		return nil
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5,
		PacketID:        subscribePacketID,
	}
	for _, f := range c.o.Subscribe {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		return fmt.Errorf("mqtt: encode subscribe: %w", err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	var body []byte
	for {
		typ, b, err := readPacket(r, body)
		if err != nil {
			return fmt.Errorf("mqtt: suback: %w", err)
		}
		body = b
		switch typ >> 4 {
		case packets.Suback:
		case packets.Publish, packets.Disconnect:
			if err := c.handle(conn, typ, body); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("mqtt: expected SUBACK, got packet type %d", typ>>4)
		}
		sa := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Suback, Remaining: len(body)}}
		if err := sa.SubackDecode(body); err != nil {
			return fmt.Errorf("mqtt: suback: %w", err)
		}
		if sa.PacketID != subscribePacketID {
			return fmt.Errorf("mqtt: SUBACK for packet %d, sent %d", sa.PacketID, subscribePacketID)
		}
		for i, code := range sa.ReasonCodes {
			if code >= 0x80 && i < len(c.o.Subscribe) {
				c.o.Logger.Warn("mqtt subscription refused", "client", c.o.ClientID, "topic", c.o.Subscribe[i],
					"code", fmt.Sprintf("0x%02x", code), "reason", sa.Properties.ReasonString)
			}
		}
		return nil
	}
}

// Lost receives, once, why the current connection ended. It is nil before Connect.
func (c *Client) Lost() <-chan error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// Unacked is the number of publishes queued or in flight without a PUBACK.
func (c *Client) Unacked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Publish queues a QoS 1 publish of payload (copied) to topic and sends it as soon as the
// window allows. It blocks while MaxQueued publishes are unacknowledged. meta comes back in
// the Ack.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, meta int) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if len(c.queue) < c.o.MaxQueued {
			m := c.newMsgLocked(topic, payload)
			m.queued, m.meta = time.Now(), meta
			c.queue = append(c.queue, m)
			write := c.claimWriteLocked()
			c.mu.Unlock()
			if write {
				c.write() // in the caller: no goroutine per publish
			}
			return nil
		}
		c.mu.Unlock()
		select {
		case <-c.space:
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// newMsgLocked encodes a PUBLISH (QoS 1, MQTT 5, no properties) into a recycled buffer.
func (c *Client) newMsgLocked(topic string, payload []byte) *outMsg {
	var m *outMsg
	if n := len(c.free); n > 0 {
		m, c.free = c.free[n-1], c.free[:n-1]
	} else {
		m = new(outMsg)
	}
	rem := 2 + len(topic) + 2 + 1 + len(payload)
	if cap(m.pkt) < rem+5 {
		m.pkt = make([]byte, 0, rem+5)
	}
	b := append(m.pkt[:0], packets.Publish<<4|1<<1)
	b = binary.AppendUvarint(b, uint64(rem)) // MQTT's variable byte integer is LEB128, as here
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	m.idAt = len(b)
	b = append(b, 0, 0, 0) // packet identifier, set when sent; no properties
	m.pkt = append(b, payload...)
	return m
}

// kickLocked starts a writer if there is something to send and nobody writing it.
func (c *Client) kickLocked() {
	if c.claimWriteLocked() {
		go c.write()
	}
}

// claimWriteLocked makes the caller the writer if there is something to send and nobody is
// writing it; the caller then calls write.
func (c *Client) claimWriteLocked() bool {
	if c.writing || c.conn == nil || (c.sent >= min(c.window, len(c.queue)) && !c.needPing) {
		return false
	}
	c.writing = true
	return true
}

// write sends queued publishes (and a pending PINGREQ) until the window is full or the queue
// empty. Only one write runs at a time, which keeps publishes in order without holding the
// lock during system calls.
func (c *Client) write() {
	var batch []byte
	for {
		c.mu.Lock()
		conn := c.conn
		var out []byte
		n := 0
		for conn != nil && c.sent < min(c.window, len(c.queue)) {
			m := c.queue[c.sent]
			c.nextID++
			if c.nextID == 0 {
				c.nextID = 1
			}
			m.id = c.nextID
			binary.BigEndian.PutUint16(m.pkt[m.idAt:], m.id)
			c.sent++
			// One publish (the usual case) is written from its own buffer; several are joined
			// into one write.
			if n == 0 {
				out = m.pkt
			} else {
				if n == 1 {
					batch = append(batch[:0], out...)
				}
				batch = append(batch, m.pkt...)
				out = batch
			}
			n++
		}
		if conn != nil && c.needPing {
			if n == 1 {
				batch = append(batch[:0], out...)
			} else if n == 0 {
				batch = batch[:0]
			}
			batch = append(batch, packets.Pingreq<<4, 0)
			out = batch
			c.needPing = false
			c.pingSent = time.Now()
		}
		if len(out) == 0 || conn == nil {
			c.writing = false
			c.mu.Unlock()
			return
		}
		now := time.Now()
		c.lastSend = now
		for _, m := range c.queue[c.sent-n : c.sent] {
			m.sent = now
		}
		c.mu.Unlock()
		if _, err := conn.Write(out); err != nil {
			// The reader sees the closed connection and reports it.
			conn.Close()
		}
	}
}

// read handles what the server sends on one connection until it ends.
func (c *Client) read(conn net.Conn, r *bufio.Reader, lost chan error) {
	var body []byte
	var err error
	for err == nil {
		var typ byte
		if typ, body, err = readPacket(r, body); err == nil {
			err = c.handle(conn, typ, body)
		}
	}
	conn.Close()
	c.mu.Lock()
	inflight := 0
	if c.conn == conn {
		inflight = c.sent
		c.conn = nil
		c.sent = 0 // sent again on the next connection
		c.needPing = false
	}
	c.mu.Unlock()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("mqtt: connection closed: %w", err)
	}
	lost <- &LostError{Err: err, InFlight: inflight}
}

// LostError says why a connection ended and how many publishes were in flight on it (they
// are sent again on the next connection).
type LostError struct {
	Err      error
	InFlight int
}

func (e *LostError) Error() string { return e.Err.Error() }
func (e *LostError) Unwrap() error { return e.Err }

// handle acts on one packet from the server; an error ends the connection.
func (c *Client) handle(conn net.Conn, typ byte, body []byte) error {
	switch typ >> 4 {
	case packets.Puback:
		return c.ack(body)
	case packets.Pingresp:
		c.mu.Lock()
		c.pingSent = time.Time{}
		c.mu.Unlock()
		return nil
	case packets.Disconnect:
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Disconnect, Remaining: len(body)}}
		if len(body) > 0 {
			if err := pk.DisconnectDecode(body); err != nil {
				return fmt.Errorf("mqtt: disconnect: %w", err)
			}
		}
		return &DisconnectError{Code: pk.ReasonCode, Reason: pk.Properties.ReasonString}
	case packets.Publish:
		return c.received(conn, typ, body)
	}
	return fmt.Errorf("mqtt: unexpected packet type %d", typ>>4)
}

// received acknowledges a PUBLISH from the server (a command on the device's topic) and hands
// it to OnMessage. Subscriptions are QoS 1 at most, so QoS 2 is a protocol error.
func (c *Client) received(conn net.Conn, typ byte, body []byte) error {
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Remaining: len(body)}}
	if err := pk.FixedHeader.Decode(typ); err != nil {
		return fmt.Errorf("mqtt: publish from server: %w", err)
	}
	if pk.FixedHeader.Qos > 1 {
		return fmt.Errorf("mqtt: publish from server at QoS %d, subscribed at 1", pk.FixedHeader.Qos)
	}
	if err := pk.PublishDecode(body); err != nil {
		return fmt.Errorf("mqtt: publish from server: %w", err)
	}
	if pk.FixedHeader.Qos == 1 {
		id := pk.PacketID
		if _, err := conn.Write([]byte{packets.Puback << 4, 2, byte(id >> 8), byte(id)}); err != nil {
			return fmt.Errorf("mqtt: puback: %w", err)
		}
	}
	if c.o.OnMessage != nil {
		// body is the reader's buffer, reused for the next packet.
		c.o.OnMessage(pk.TopicName, bytes.Clone(pk.Payload))
	}
	return nil
}

// DisconnectError is a DISCONNECT from the server, with its reason code.
type DisconnectError struct {
	Code   byte
	Reason string
}

func (e *DisconnectError) Error() string {
	return fmt.Sprintf("disconnected by server: 0x%02x %s", e.Code, e.Reason)
}

// ack matches a PUBACK to its publish.
func (c *Client) ack(body []byte) error {
	if len(body) < 2 {
		return errors.New("mqtt: short PUBACK")
	}
	id := binary.BigEndian.Uint16(body)
	a := Ack{}
	if len(body) > 2 {
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Puback, Remaining: len(body)}}
		if err := pk.PubackDecode(body); err != nil {
			return fmt.Errorf("mqtt: puback: %w", err)
		}
		a.Code, a.Reason = pk.ReasonCode, pk.Properties.ReasonString
	}
	c.mu.Lock()
	i := 0
	for i < c.sent && c.queue[i].id != id {
		i++
	}
	if i == c.sent {
		c.mu.Unlock()
		return nil // not ours (an old connection's): nothing to do
	}
	m := c.queue[i]
	copy(c.queue[i:], c.queue[i+1:])
	c.queue[len(c.queue)-1] = nil
	c.queue = c.queue[:len(c.queue)-1]
	c.sent--
	a.Queued, a.Meta = m.queued, m.meta
	c.free = append(c.free, m)
	c.kickLocked()
	c.mu.Unlock()
	select {
	case c.space <- struct{}{}:
	default:
	}
	if c.o.OnAck != nil {
		c.o.OnAck(a)
	}
	return nil
}

// tickPeriod is a quarter of the keep-alive (or of the ack timeout): a PINGREQ then goes out
// at most three quarters of the keep-alive after the last packet.
func (c *Client) tickPeriod() time.Duration { return min(c.o.KeepAlive, c.o.AckTimeout) / 4 }

// tick runs every tickPeriod: it pings an idle connection and drops one whose server stopped
// answering.
func (c *Client) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	period := c.tickPeriod()
	defer c.timer.Reset(period)
	if c.conn == nil {
		return
	}
	now := time.Now()
	var why string
	switch {
	case !c.pingSent.IsZero() && now.Sub(c.pingSent) > c.o.KeepAlive:
		why = "no PINGRESP"
	case c.sent > 0 && now.Sub(c.queue[0].sent) > c.o.AckTimeout:
		why = "no PUBACK"
	}
	if why != "" {
		c.o.Logger.Warn("mqtt connection unresponsive", "client", c.o.ClientID, "reason", why)
		c.conn.Close() // the reader reports the loss
		return
	}
	if now.Sub(c.lastSend) >= c.o.KeepAlive/2 && c.pingSent.IsZero() {
		c.needPing = true
		c.kickLocked()
	}
}

// Close sends DISCONNECT (normal) and closes the connection; unacknowledged publishes are
// dropped.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	close(c.done)
	if conn == nil {
		return nil
	}
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, werr := conn.Write([]byte{packets.Disconnect << 4, 0})
	cerr := conn.Close()
	if werr != nil {
		return fmt.Errorf("mqtt: disconnect: %w", werr)
	}
	return cerr
}

// readPacket reads one MQTT control packet: its first byte and its body (into buf's storage).
func readPacket(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, buf, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, buf, err
	}
	if n > 1<<20 {
		return 0, buf, fmt.Errorf("mqtt: packet of %d bytes from server", n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, buf, err
	}
	return typ, buf, nil
}
