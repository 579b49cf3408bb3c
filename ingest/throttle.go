package ingest

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// ThrottleOptions tune a Throttle; zero values take the defaults.
type ThrottleOptions struct {
	// MaxFailures within Window block a source; default 10.
	MaxFailures int
	// Window is how far back failures count; default 1 minute.
	Window time.Duration
	// Block is how long a blocked source is refused; default 5 minutes.
	Block time.Duration
	// MaxSources bounds the sources tracked at once (memory under a spray of addresses);
	// default 65,536.
	MaxSources int
	Now        func() time.Time
	Logger     *slog.Logger
}

// Throttle refuses, for a while, a source address that failed device authentication too often
// (MQTT and HTTP ingest share one, so guessing over both counts once). Only the source is
// blocked: devices elsewhere, and the same device from another address, carry on. Sources
// behind one NAT share a fate, so MaxFailures should exceed what a ward's misconfigured
// devices produce in a Window. It is safe for concurrent use; a nil *Throttle throttles
// nothing.
type Throttle struct {
	o       ThrottleOptions
	mu      sync.Mutex
	sources map[string]*source
}

type source struct {
	failures     []time.Time // within the window, oldest first; at most MaxFailures
	blockedUntil time.Time
}

// NewThrottle returns a Throttle with the options' defaults filled in.
func NewThrottle(o ThrottleOptions) *Throttle {
	if o.MaxFailures <= 0 {
		o.MaxFailures = 10
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.Block <= 0 {
		o.Block = 5 * time.Minute
	}
	if o.MaxSources <= 0 {
		o.MaxSources = 1 << 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Throttle{o: o, sources: map[string]*source{}}
}

// SourceOf is the source of a remote address ("host:port"): its host.
func SourceOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// Blocked says whether src is refused now, and until when.
func (t *Throttle) Blocked(src string) (time.Time, bool) {
	if t == nil {
		return time.Time{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sources[src]
	if !ok || !t.o.Now().Before(s.blockedUntil) {
		return time.Time{}, false
	}
	return s.blockedUntil, true
}

// Failed records a failed authentication from src claiming to be device (for the log). When
// it is the failure that blocks src, the block is logged, once.
func (t *Throttle) Failed(src, device, transport string) {
	if t == nil {
		return
	}
	now := t.o.Now()
	t.mu.Lock()
	s, ok := t.sources[src]
	if !ok {
		if len(t.sources) >= t.o.MaxSources {
			t.prune(now)
		}
		s = &source{}
		t.sources[src] = s
	}
	if now.Before(s.blockedUntil) {
		t.mu.Unlock()
		return
	}
	keep := s.failures[:0]
	for _, f := range s.failures {
		if now.Sub(f) < t.o.Window {
			keep = append(keep, f)
		}
	}
	s.failures = append(keep, now)
	blocked := len(s.failures) >= t.o.MaxFailures
	if blocked {
		s.blockedUntil, s.failures = now.Add(t.o.Block), nil
	}
	t.mu.Unlock()
	if blocked {
		t.o.Logger.Warn("device authentication throttled: source refused", "source", src, "device", device, "transport", transport,
			"failures", t.o.MaxFailures, "within", t.o.Window, "for", t.o.Block)
	}
}

// prune drops sources with nothing left to remember; if all are still live, it drops the
// unblocked ones (a spray of addresses must not grow the map without bound, and forgetting a
// few failures is the lesser harm). t.mu is held.
func (t *Throttle) prune(now time.Time) {
	for k, s := range t.sources {
		if !now.Before(s.blockedUntil) && (len(s.failures) == 0 || now.Sub(s.failures[len(s.failures)-1]) >= t.o.Window) {
			delete(t.sources, k)
		}
	}
	if len(t.sources) < t.o.MaxSources {
		return
	}
	for k, s := range t.sources {
		if !now.Before(s.blockedUntil) {
			delete(t.sources, k)
		}
	}
}
