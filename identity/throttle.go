package identity

import (
	"net"
	"sync"
	"time"
)

// throttle refuses a source address after max failures within window, for window. It keeps
// a count per address, so memory is bounded by the addresses that failed recently.
type throttle struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	seen  map[string]*failures
	swept time.Time
}

type failures struct {
	start   time.Time // of the current window
	n       int
	blocked time.Time // refused until
}

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{max: max, window: window, seen: map[string]*failures{}}
}

// host drops the port: a client opens a new port for each connection.
func host(source string) string {
	if h, _, err := net.SplitHostPort(source); err == nil {
		return h
	}
	return source
}

func (t *throttle) blocked(source string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.seen[host(source)]
	return f != nil && now.Before(f.blocked)
}

func (t *throttle) fail(source string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.swept) > t.window {
		for k, f := range t.seen {
			if now.Sub(f.start) > t.window && now.After(f.blocked) {
				delete(t.seen, k)
			}
		}
		t.swept = now
	}
	k := host(source)
	f := t.seen[k]
	if f == nil || now.Sub(f.start) > t.window {
		f = &failures{start: now}
		t.seen[k] = f
	}
	f.n++
	if f.n >= t.max {
		f.blocked = now.Add(t.window)
	}
}
