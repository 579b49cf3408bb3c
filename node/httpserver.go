package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// HTTPLimits bound how long and how much a client may hold of the HTTP server (API, FHIR,
// dashboard), so that slow or idle sockets cannot tie up the node while others wait. Zero
// fields take the defaults below; there is deliberately no whole-response write timeout, as
// live streams (SSE under /api/v1/.../stream) last as long as the client watches.
type HTTPLimits struct {
	// HeaderTimeout bounds reading a request's headers (default 10 s). Headers are small: a
	// client on a poor link sends them in well under a second, and a slow-loris client that
	// dribbles them a byte at a time is cut off after this.
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, counted from the end of the headers
	// (default 1 min); a body not received by then is answered 408 and the connection closed.
	// Bodies are at most 4 MiB (a CGM export, a rule set): within a minute even at 560 kbit/s,
	// while a body dribbled slowly to hold a connection is cut off. Requests without a body
	// (GET, live streams) are not affected.
	BodyTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this long (default
	// 2 min; net/http's own default is never): long enough for a dashboard's next poll to
	// reuse the connection, short enough that idle sockets do not pile up.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (default 64 KiB, net/http's is 1 MiB): ours
	// are a bearer token or a session cookie, and 64 KiB leaves room for large SSO tokens.
	MaxHeaderBytes int
}

// Defaults of HTTPLimits.
const (
	DefaultHTTPHeaderTimeout  = 10 * time.Second
	DefaultHTTPBodyTimeout    = time.Minute
	DefaultHTTPIdleTimeout    = 2 * time.Minute
	DefaultHTTPMaxHeaderBytes = 64 << 10
)

func (l HTTPLimits) withDefaults() HTTPLimits {
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = DefaultHTTPHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultHTTPBodyTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultHTTPIdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultHTTPMaxHeaderBytes
	}
	return l
}

// newHTTPServer is the node's HTTP server with its limits applied.
func newHTTPServer(ctx context.Context, h http.Handler, l HTTPLimits, log *slog.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           bodyDeadline(h, l.BodyTimeout, log),
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// bodyDeadline gives each request with a body d to deliver it, through a read deadline on the
// connection set per request (http.ResponseController). The deadline is lifted once the body
// has been read to its end, so that the server's background read of a connection (which
// would cancel the request's context on a timeout) never trips over it; a server-wide
// ReadTimeout would do exactly that to long requests.
func bodyDeadline(next http.Handler, d time.Duration, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r) // a connection without deadlines (none of ours): nothing to bound
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d, log: log, r: r}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	d      time.Duration
	log    *slog.Logger
	r      *http.Request
	done   bool
	logged bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.done:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if !b.logged {
			b.logged = true
			b.log.Warn("http request body not received in time; connection closed", "remote", b.r.RemoteAddr,
				"method", b.r.Method, "path", b.r.URL.Path, "timeout", b.d)
		}
		err = fmt.Errorf("request body not received within %v: %w", b.d, os.ErrDeadlineExceeded)
	}
	return n, err
}
