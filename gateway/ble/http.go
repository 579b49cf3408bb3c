package ble

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
)

// Response is the JSON body of every answer: on success, and (with the problem fields of
// RFC 9457) on failure.
type Response struct {
	Type     string   `json:"type,omitempty"`
	Title    string   `json:"title,omitempty"`
	Status   int      `json:"status,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	Accepted int      `json:"accepted"` // notifications the Sink has (or that carried no reading)
	Results  []Result `json:"results"`
}

// ServeHTTP takes POST with a JSON body holding one Notification (an object) or a batch (an
// array), and answers with a Response:
//
//	200  every notification accepted (or valid with no reading)
//	400  a notification is malformed (results say which and why); nothing stored
//	413  body larger than MaxBodyBytes; 415 not JSON; 405 not POST
//	422  a notification comes from an address no platform device is mapped to; nothing stored
//	503  the Sink failed (spool full or closed): results say which were accepted; resend the
//	     rest, in order, after Retry-After seconds
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.problem(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST notifications", nil)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			h.problem(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/json", ct), nil)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes: send smaller batches", h.cfg.MaxBodyBytes), nil)
			return
		}
		h.problem(w, http.StatusBadRequest, "reading the body: "+err.Error(), nil)
		return
	}
	ns, err := parseBody(body, h.cfg.MaxBatch)
	if err != nil {
		h.problem(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	res, err := h.Deliver(r.Context(), ns)
	if err != nil {
		var de *DeliveryError
		status := http.StatusServiceUnavailable
		if errors.As(err, &de) {
			switch de.Status {
			case Refused:
				status = http.StatusBadRequest
			case UnknownDevice:
				status = http.StatusUnprocessableEntity
			}
		}
		h.log.Warn("BLE notifications not accepted", "status", status, "notifications", len(ns), "err", err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		h.problem(w, status, err.Error(), res)
		return
	}
	h.log.Debug("BLE notifications accepted", "notifications", len(ns))
	writeJSON(w, http.StatusOK, "application/json", Response{Accepted: accepted(res), Results: res})
}

// parseBody reads one notification or an array of them, refusing unknown fields (a typo such
// as "payload" for "payload_hex" would otherwise read as a missing payload).
func parseBody(body []byte, maxBatch int) ([]Notification, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty body: send a notification object or an array of them")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var ns []Notification
	switch trimmed[0] {
	case '{':
		var n Notification
		if err := dec.Decode(&n); err != nil {
			return nil, fmt.Errorf("body is not a notification: %w", err)
		}
		ns = []Notification{n}
	case '[':
		if err := dec.Decode(&ns); err != nil {
			return nil, fmt.Errorf("body is not an array of notifications: %w", err)
		}
		if len(ns) == 0 {
			return nil, errors.New("empty batch: the array holds no notification")
		}
		if len(ns) > maxBatch {
			return nil, fmt.Errorf("batch of %d notifications: at most %d per request", len(ns), maxBatch)
		}
	default:
		return nil, errors.New("body is not JSON: send a notification object or an array of them")
	}
	if dec.More() {
		return nil, errors.New("body holds more than one JSON value: wrap notifications in one array")
	}
	return ns, nil
}

func accepted(res []Result) int {
	n := 0
	for _, r := range res {
		if r.Status == Accepted || r.Status == NoReading {
			n++
		}
	}
	return n
}

func (h *Handler) problem(w http.ResponseWriter, status int, detail string, res []Result) {
	if res == nil {
		res = []Result{}
	}
	writeJSON(w, status, "application/problem+json", Response{
		Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail,
		Accepted: accepted(res), Results: res,
	})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only plain strings and numbers go in; this cannot happen, but never answer nothing.
		status, body = http.StatusInternalServerError, []byte(`{"title":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
