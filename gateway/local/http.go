package local

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// HTTPHandler serves
//
//	POST /senml          the device is named by the records' base name
//	POST /senml/{name}   the device is named here; record names then need only the code
//
// with Content-Type application/senml+json or application/senml+cbor. Answers: 204 once the
// Sink has the pack; 400 with the reason (text/plain) for a malformed pack or invalid reading;
// 404 for an unmapped device name; 413 over MaxBodyBytes; 415 another content type; 503 (with
// Retry-After) when the Sink failed, so the device sends the pack again.
func (a *Adapter) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /senml", func(w http.ResponseWriter, r *http.Request) { a.serveHTTP(w, r, "") })
	mux.HandleFunc("POST /senml/{name}", func(w http.ResponseWriter, r *http.Request) { a.serveHTTP(w, r, r.PathValue("name")) })
	return mux
}

func (a *Adapter) serveHTTP(w http.ResponseWriter, r *http.Request, name string) {
	received := time.Now()
	var format Format
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/senml+json or application/senml+cbor", r.Header.Get("Content-Type")))
		return
	case mt == "application/senml+json":
		format = JSON
	case mt == "application/senml+cbor":
		format = CBOR
	default:
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/senml+json or application/senml+cbor", mt))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("pack larger than %d bytes: send smaller packs", a.cfg.MaxBodyBytes))
			return
		}
		httpError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if _, err := a.Submit(r.Context(), "http", name, format, body, received); err != nil {
		status := http.StatusServiceUnavailable
		var e *Error
		if errors.As(err, &e) {
			switch e.Kind {
			case BadRequest:
				status = http.StatusBadRequest
			case UnknownDevice:
				status = http.StatusNotFound
			}
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		httpError(w, status, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// httpError answers with the reason as plain text, which small devices can log as is.
func httpError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reason+"\n")
}
