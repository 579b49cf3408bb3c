package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/iomt/iomt/certfile"
	"github.com/iomt/iomt/loopback"
)

// hstsValue tells browsers to use HTTPS for this host for a year, even if a link says http.
const hstsValue = "max-age=31536000"

// hsts adds the Strict-Transport-Security header to every response served over TLS.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsValue)
		h.ServeHTTP(w, r)
	})
}

// loadPair loads a certificate pair given by two flags; neither set means plaintext (nil).
func loadPair(what, certFile, keyFile, certFlag, keyFlag string, log *slog.Logger) (*certfile.Pair, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%s TLS: give both --%s and --%s", what, certFlag, keyFlag)
	}
	p, err := certfile.Load(certFile, keyFile, log.With("listener", what))
	if err != nil {
		return nil, fmt.Errorf("%s TLS certificate (--%s, --%s): %w", what, certFlag, keyFlag, err)
	}
	return p, nil
}

// plaintextWarning says, for a listener without TLS that other machines can reach, what
// crosses the network in clear and which flags fix it; "" for one on loopback or with TLS.
func plaintextWarning(what string, addr net.Addr, tls bool, fix string) string {
	if tls || loopback.Addr(addr.String()) {
		return ""
	}
	return fmt.Sprintf("%s listens on %s, reachable from the network, WITHOUT TLS: credentials and patient data cross it in clear; set %s (or listen on 127.0.0.1 behind a TLS proxy)",
		what, addr, fix)
}

// Warnings are what the node found unsafe in its own configuration at start (a listener
// reachable from the network without TLS), already logged at WARN; `iomt serve` repeats
// them on stderr.
func (n *Node) Warnings() []string { return n.warnings }

// HTTPS reports whether the HTTP API, FHIR API and dashboard are served over TLS.
func (n *Node) HTTPS() bool { return n.httpTLS != nil }

// URL is the base URL of the HTTP API: https:// under TLS, http:// otherwise.
func (n *Node) URL() string {
	if n.HTTPS() {
		return "https://" + n.HTTPAddr()
	}
	return "http://" + n.HTTPAddr()
}
