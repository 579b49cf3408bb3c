package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// ServeCoAP serves CoAP over UDP on pc until ctx is done, then stops and returns nil:
//
//	POST /senml          the device is named by the records' base name
//	POST /senml/{name}   the device is named here
//
// with Content-Format 110 (senml+json) or 112 (senml+cbor). Answers: 2.04 Changed once the
// Sink has the pack; 4.00 with a diagnostic payload (the reason) for a malformed pack or
// invalid reading; 4.04 for an unmapped device name; 4.15 for another content format; 4.05 for
// another method; 5.03 when the Sink failed, so the device sends the pack again.
func (a *Adapter) ServeCoAP(ctx context.Context, pc *net.UDPConn) error {
	router := mux.NewRouter()
	if err := router.Handle("/senml", mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) { a.serveCoAP(ctx, w, r, "") })); err != nil {
		return fmt.Errorf("local: CoAP route: %w", err)
	}
	if err := router.Handle("/senml/{name}", mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
		a.serveCoAP(ctx, w, r, r.RouteParams.Vars["name"])
	})); err != nil {
		return fmt.Errorf("local: CoAP route: %w", err)
	}
	srv := udp.NewServer(
		options.WithMux(router),
		options.WithContext(ctx),
		options.WithErrors(func(err error) { a.log.Debug("CoAP server", "err", err) }),
	)
	l := coapnet.NewUDPConn("udp", pc)
	stop := context.AfterFunc(ctx, srv.Stop)
	defer stop()
	err := srv.Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local: serving CoAP: %w", err)
	}
	return nil
}

func (a *Adapter) serveCoAP(ctx context.Context, w mux.ResponseWriter, r *mux.Message, name string) {
	received := time.Now()
	if r.Code() != codes.POST {
		coapAnswer(a, w, codes.MethodNotAllowed, fmt.Sprintf("method %s not allowed: POST a SenML pack", r.Code()))
		return
	}
	var format Format
	cf, err := r.ContentFormat()
	switch {
	case err != nil:
		coapAnswer(a, w, codes.UnsupportedMediaType, "no Content-Format: send 110 (application/senml+json) or 112 (application/senml+cbor)")
		return
	case cf == message.AppSenmlJSON:
		format = JSON
	case cf == message.AppSenmlCbor:
		format = CBOR
	default:
		coapAnswer(a, w, codes.UnsupportedMediaType, fmt.Sprintf("Content-Format %d: send 110 (application/senml+json) or 112 (application/senml+cbor)", cf))
		return
	}
	var body []byte
	if r.Body() != nil {
		if body, err = r.ReadBody(); err != nil {
			coapAnswer(a, w, codes.BadRequest, "reading the payload: "+err.Error())
			return
		}
	}
	// The request's own context ends with the exchange; the server's ends with shutdown.
	rctx := r.Context()
	if rctx == nil {
		rctx = ctx
	}
	if _, err := a.Submit(rctx, "coap", name, format, body, received); err != nil {
		code := codes.ServiceUnavailable
		var e *Error
		if errors.As(err, &e) {
			switch e.Kind {
			case BadRequest:
				code = codes.BadRequest
			case UnknownDevice:
				code = codes.NotFound
			}
		}
		coapAnswer(a, w, code, err.Error())
		return
	}
	coapAnswer(a, w, codes.Changed, "")
}

// coapAnswer sets the response; a refusal carries its reason as a diagnostic payload (RFC 7252
// §5.5.2), cut to fit one datagram.
func coapAnswer(a *Adapter, w mux.ResponseWriter, code codes.Code, reason string) {
	var err error
	if reason == "" {
		err = w.SetResponse(code, message.TextPlain, nil)
	} else {
		if len(reason) > 512 {
			reason = strings.ToValidUTF8(reason[:512], "")
		}
		err = w.SetResponse(code, message.TextPlain, bytes.NewReader([]byte(reason)))
	}
	if err != nil {
		a.log.Warn("CoAP: setting the response", "code", code, "err", err)
	}
}
