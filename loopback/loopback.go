// Package loopback tells whether an address stays on this machine. Plaintext (HTTP, MQTT,
// SMTP without STARTTLS) is acceptable there and nowhere else unless an operator says so, so
// the listeners, the gateway's uplink, webhooks and the EHR export all ask the same question.
package loopback

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Host reports whether host (a name or an IP literal, optionally in brackets) is this machine
// by its loopback interface: "localhost", a name under ".localhost" (RFC 6761), 127.0.0.0/8
// or ::1. Other names are not resolved: a name that resolves to loopback today may not
// tomorrow, so it counts as remote.
func Host(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if i := strings.IndexByte(h, '%'); i >= 0 { // a zone (fe80::1%eth0) is never loopback's
		h = h[:i]
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// Addr reports whether a host:port address is on loopback. A listen address without a host
// (":8080") or with an unspecified one ("0.0.0.0", "[::]") listens on every interface, so it
// is not.
func Addr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	return host != "" && Host(host)
}

// PlainHTTP reports whether u is a plain http:// URL to another machine: what the webhooks
// and the EHR export refuse unless told otherwise.
func PlainHTTP(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, "http") && !Host(u.Hostname())
}
