package main

import (
	"flag"

	"github.com/iomt/iomt/ingest/mqtt"
	"github.com/iomt/iomt/node"
)

// limits are serve's flags that bound slow, idle and not-logged-in clients.
type limits struct {
	http node.HTTPLimits
	mqtt mqtt.Limits
}

// limitFlags declares the flags; their values are read once fs is parsed.
func limitFlags(fs *flag.FlagSet) *limits {
	l := &limits{}
	fs.DurationVar(&l.http.HeaderTimeout, "http-header-timeout", node.DefaultHTTPHeaderTimeout, "time a client has to send a request's headers")
	fs.DurationVar(&l.http.BodyTimeout, "http-body-timeout", node.DefaultHTTPBodyTimeout, "time a client has to send a request's body (408 after it); live streams are not affected")
	fs.DurationVar(&l.http.IdleTimeout, "http-idle-timeout", node.DefaultHTTPIdleTimeout, "idle keep-alive HTTP connections are closed after this")
	fs.IntVar(&l.http.MaxHeaderBytes, "http-max-header-bytes", node.DefaultHTTPMaxHeaderBytes, "largest request headers accepted, in bytes")
	fs.DurationVar(&l.mqtt.ConnectTimeout, "mqtt-connect-timeout", mqtt.DefaultConnectTimeout, "time a new MQTT connection has to log in (TLS handshake and CONNECT)")
	fs.IntVar(&l.mqtt.MaxPendingPerSource, "mqtt-max-pending-per-source", mqtt.DefaultMaxPendingPerSource, "MQTT connections one IP address may have open without having logged in; more are refused")
	return l
}
