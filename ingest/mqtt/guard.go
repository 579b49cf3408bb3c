package mqtt

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Limits bound the connections that have not logged in yet, which cost the broker a socket,
// a goroutine and buffers before anyone knows who they are.
type Limits struct {
	// ConnectTimeout is how long a new connection has to log in: its TLS handshake, if any,
	// and its CONNECT packet (default 10 s; mochi waits for ever). A device on a poor link
	// connects in a second or two; a socket that never sends CONNECT is closed after this.
	// Once logged in, the client's own keep-alive bounds it.
	ConnectTimeout time.Duration
	// MaxPendingPerSource is how many connections one IP address may have open that have not
	// logged in yet (default 16): a gateway reconnecting its devices opens a few at once,
	// while one host opening hundreds of sockets that never log in is refused beyond this,
	// without holding up other sources.
	MaxPendingPerSource int
}

// Defaults of Limits.
const (
	DefaultConnectTimeout      = 10 * time.Second
	DefaultMaxPendingPerSource = 16
)

func (l Limits) withDefaults() Limits {
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	if l.MaxPendingPerSource <= 0 {
		l.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	return l
}

// guard is the broker's listener (in place of mochi's listeners.Net): it refuses a source's
// connections beyond MaxPendingPerSource not yet logged in, gives each connection
// ConnectTimeout to log in (a deadline that mochi replaces with the keep-alive once the
// CONNECT is read), and says why a connection that never logged in was closed. The
// connections it hands to mochi are the listener's own (a *tls.Conn under TLS), unwrapped.
type guard struct {
	ln  net.Listener
	lim Limits
	log *slog.Logger
	met *metrics

	end atomic.Bool
	mu  sync.Mutex
	// pending are the connections not logged in yet, by source; loggedIn removes them.
	pending map[net.Conn]netip.Addr
	sources map[netip.Addr]*source
}

// source is what guard knows of one address with connections not logged in yet.
type source struct {
	pending int
	refused int // since the source last had none pending; the first is logged
}

var _ listeners.Listener = (*guard)(nil)

func newGuard(ln net.Listener, lim Limits, log *slog.Logger, met *metrics) *guard {
	return &guard{ln: ln, lim: lim.withDefaults(), log: log, met: met,
		pending: map[net.Conn]netip.Addr{}, sources: map[netip.Addr]*source{}}
}

func (g *guard) ID() string              { return "tcp" }
func (g *guard) Address() string         { return g.ln.Addr().String() }
func (g *guard) Protocol() string        { return "tcp" }
func (g *guard) Init(*slog.Logger) error { return nil }
func (g *guard) Close(closeClients listeners.CloseFn) {
	if g.end.CompareAndSwap(false, true) {
		closeClients(g.ID())
	}
	_ = g.ln.Close()
}

// Serve accepts connections until the listener is closed.
func (g *guard) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			return
		}
		if g.end.Load() {
			_ = conn.Close()
			return
		}
		ip := sourceOf(conn.RemoteAddr())
		if !g.admit(conn, ip) {
			_ = conn.Close()
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(g.lim.ConnectTimeout))
		go func() {
			err := establish(g.ID(), conn)
			if g.release(conn, ip) {
				g.closedBeforeLogin(ip, err)
			}
		}()
	}
}

// admit counts a new connection of ip as pending, or refuses it when ip has as many pending
// as allowed; the first refusal of a run is logged.
func (g *guard) admit(conn net.Conn, ip netip.Addr) bool {
	g.mu.Lock()
	s := g.sources[ip]
	if s == nil {
		s = &source{}
		g.sources[ip] = s
	}
	if s.pending >= g.lim.MaxPendingPerSource {
		s.refused++
		first := s.refused == 1
		g.mu.Unlock()
		g.met.refused("too_many_pending")
		if first {
			g.log.Warn("mqtt connection refused: too many connections from this address have not logged in",
				"remote", ip.String(), "limit", g.lim.MaxPendingPerSource, "connectTimeout", g.lim.ConnectTimeout)
		}
		return false
	}
	s.pending++
	g.pending[conn] = ip
	g.mu.Unlock()
	return true
}

// loggedIn stops counting conn as pending: its device has authenticated.
func (g *guard) loggedIn(conn net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ip, ok := g.pending[conn]; ok {
		g.forget(conn, ip)
	}
}

// release stops counting a closed connection, and reports whether it had not logged in.
func (g *guard) release(conn net.Conn, ip netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.pending[conn]; !ok {
		return false
	}
	g.forget(conn, ip)
	return true
}

// forget drops conn from the pending ones; g.mu is held.
func (g *guard) forget(conn net.Conn, ip netip.Addr) {
	delete(g.pending, conn)
	s := g.sources[ip]
	if s.pending--; s.pending > 0 {
		return
	}
	if s.refused > 1 {
		g.log.Warn("mqtt connections refused from this address while too many had not logged in",
			"remote", ip.String(), "refused", s.refused)
	}
	delete(g.sources, ip)
}

// closedBeforeLogin says why a connection that never logged in ended. Refused credentials
// are logged by the hook, and a client that hangs up needs no line.
func (g *guard) closedBeforeLogin(ip netip.Addr, err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		g.met.refused("connect_timeout")
		g.log.Warn("mqtt connection closed: it did not log in (TLS handshake and CONNECT) in time",
			"remote", ip.String(), "connectTimeout", g.lim.ConnectTimeout)
	case errors.Is(err, packets.ErrProtocolViolationRequireFirstConnect):
		g.met.refused("no_connect")
		g.log.Warn("mqtt connection closed: its first packet was not CONNECT", "remote", ip.String())
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, packets.ErrBadUsernameOrPassword):
	default:
		g.log.Debug("mqtt connection closed before login", "remote", ip.String(), "err", err)
	}
}

// sourceOf is the IP address a connection comes from (IPv4-mapped IPv6 as IPv4).
func sourceOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
