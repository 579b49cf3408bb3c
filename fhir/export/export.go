// Package export pushes observations to an external EHR's FHIR R4 endpoint.
//
// The exporter subscribes to the bus with its own group, maps the selected readings (by
// default the vital signs) to Observations with fhir.Mapper, and writes them to an outbox on
// disk (Pebble, in its own directory) before the bus handler returns, so what was handed to
// it survives a restart. A sender drains the outbox in transaction Bundles of PUT
// Observation/{deterministic id}: a retry, a replay or a redelivery overwrites the same
// resource and never duplicates it. Failures are retried with exponential backoff and full
// jitter (honouring Retry-After on 429 and 503); an entry the EHR refuses for itself (4xx)
// goes to a dead-letter list that an http.Handler shows and re-queues.
//
// Patient references are plain references Patient/{iomt patient id}, with the MRN as
// Reference.identifier when a Registry is configured: the EHR must know iomt's patient ids
// (or resolve the identifier). Waveforms are not exported.
package export

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/fhir"
	"github.com/iomt/iomt/loopback"
)

// Config sets up an Exporter.
type Config struct {
	// Bus and Group: the exporter subscribes with this group name (default "fhir-export"), so
	// it sees every batch once whatever other consumers do.
	Bus   iomt.Bus
	Group string
	// Catalog maps codes; required.
	Catalog *codes.Catalog
	// Codes are the catalog IDs to export; default: every code of the FHIR vital-signs
	// profiles (systolic and diastolic readings of one device and time go as the BP panel).
	Codes []string
	// Registry, if set, is asked for patients' MRNs, added to Patient references.
	Registry  iomt.Registry
	MRNSystem string
	// URL is the EHR's FHIR base (the transaction is POSTed to it); required. A plain
	// http:// URL to another machine is refused unless AllowHTTP.
	URL string
	// AllowHTTP lets the export (patient data, credentials) go to a plain http:// EHR on
	// another machine, in clear (--fhir-export-allow-http).
	AllowHTTP bool
	// Token (bearer) or Username and Password (basic) authenticate to the EHR. They are
	// never logged.
	Token              string
	Username, Password string
	// Dir is the outbox's directory, the exporter's own; required.
	Dir string
	// BatchSize entries per transaction (default 100); a smaller batch waits at most
	// BatchDelay (default 1 s) for more.
	BatchSize  int
	BatchDelay time.Duration
	// MinBackoff and MaxBackoff bound the retry delay (defaults 500 ms and 1 min).
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient talks to the EHR; default: a client with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Registerer, if set, receives the exporter's metrics.
	Registerer prometheus.Registerer
	// Authorize, if set, guards the dead-letter handler.
	Authorize func(r *http.Request) (subject string, ok bool)
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Exporter is a running EHR export. Its methods are safe for concurrent use.
type Exporter struct {
	cfg    Config
	m      fhir.Mapper
	db     *pebble.DB
	want   map[string]bool
	log    *slog.Logger
	target string // URL with any credentials removed, for logs

	mu     sync.Mutex // guards seq, closed and mrn
	seq    uint64
	mrn    map[string]string // patient → MRN ("" when none), cached
	wake   chan struct{}
	closed bool

	subscribed atomic.Bool

	queued, sent, retries, dead prometheus.Counter
	depth, deadDepth            prometheus.Gauge
}

// Outbox keys: q/{seq} → entry awaiting delivery; d/{observation id} → dead letter.
var (
	queuePrefix = []byte("q/")
	deadPrefix  = []byte("d/")
)

// entry is one Observation waiting in the outbox.
type entry struct {
	ID       string          `json:"id"`
	Resource json.RawMessage `json:"resource"`
	Enqueued int64           `json:"enqueued"` // Unix ms
	Attempts int             `json:"attempts,omitempty"`
	seq      uint64
}

// DeadLetter is an Observation the EHR refused.
type DeadLetter struct {
	ID       string          `json:"id"`
	Status   int             `json:"status"` // the EHR's HTTP status
	Reason   string          `json:"reason"`
	At       time.Time       `json:"at"`
	Attempts int             `json:"attempts"`
	Resource json.RawMessage `json:"resource"`
}

// New opens (or creates) the outbox and checks the configuration. Call Run to start.
func New(cfg Config) (*Exporter, error) {
	if cfg.Catalog == nil || cfg.URL == "" || cfg.Dir == "" {
		return nil, errors.New("export: Catalog, URL and Dir are required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("export: URL %q is not an http(s) URL", cfg.URL)
	}
	if u.User != nil {
		return nil, errors.New("export: put credentials in Token or Username/Password, not in the URL")
	}
	if loopback.PlainHTTP(u) && !cfg.AllowHTTP {
		return nil, fmt.Errorf("export: URL %q is plain http to another machine: observations and the EHR credentials "+
			"would cross the network in clear; use https://, or allow it with --fhir-export-allow-http only on a network "+
			"protected otherwise", cfg.URL)
	}
	cfg.Group = cmp.Or(cfg.Group, "fhir-export")
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 100)
	cfg.BatchDelay = cmp.Or(cfg.BatchDelay, time.Second)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, 500*time.Millisecond)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, time.Minute)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	want := make(map[string]bool)
	if len(cfg.Codes) == 0 {
		for _, c := range cfg.Catalog.All() {
			if c.FHIRVitalSigns {
				want[c.ID] = true
			}
		}
	}
	for _, id := range cfg.Codes {
		c, ok := cfg.Catalog.Lookup(id)
		if !ok {
			return nil, fmt.Errorf("export: code %q is not in the catalog", id)
		}
		want[c.ID] = true
		for _, comp := range c.Components {
			want[comp] = true // exporting the BP panel means exporting its readings
		}
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{Logger: pebbleLogger{cfg.Logger}})
	if err != nil {
		return nil, fmt.Errorf("export: open outbox %s: %w", cfg.Dir, err)
	}
	e := &Exporter{
		cfg: cfg, m: fhir.Mapper{Catalog: cfg.Catalog, MRNSystem: cfg.MRNSystem}, db: db, want: want,
		log: cfg.Logger, target: u.Redacted(), mrn: map[string]string{}, wake: make(chan struct{}, 1),
	}
	e.initMetrics()
	if err := e.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return e, nil
}

func (e *Exporter) initMetrics() {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "iomt", Subsystem: "fhir_export", Name: name, Help: help})
	}
	e.queued = counter("queued_total", "Observations written to the export outbox.")
	e.sent = counter("sent_total", "Observations the EHR accepted.")
	e.retries = counter("retries_total", "Deliveries that failed and will be retried.")
	e.dead = counter("dead_letters_total", "Observations the EHR refused, moved to the dead-letter list.")
	e.depth = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "iomt", Subsystem: "fhir_export", Name: "outbox_entries", Help: "Observations waiting for delivery."})
	e.deadDepth = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "iomt", Subsystem: "fhir_export", Name: "dead_letters", Help: "Observations on the dead-letter list."})
	if r := e.cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{e.queued, e.sent, e.retries, e.dead, e.depth, e.deadDepth} {
			if err := r.Register(c); err != nil {
				e.log.Warn("export: metric not registered", "err", err)
			}
		}
	}
}

// recover finds the next sequence number and the outbox's depth after a restart.
func (e *Exporter) recover() error {
	n, last, err := e.count(queuePrefix)
	if err != nil {
		return err
	}
	if last != nil {
		e.seq = binary.BigEndian.Uint64(last[len(queuePrefix):])
	}
	e.depth.Set(float64(n))
	n, _, err = e.count(deadPrefix)
	if err != nil {
		return err
	}
	e.deadDepth.Set(float64(n))
	return nil
}

func (e *Exporter) count(prefix []byte) (int, []byte, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, nil, fmt.Errorf("export: scan outbox: %w", err)
	}
	defer it.Close()
	n := 0
	var last []byte
	for it.First(); it.Valid(); it.Next() {
		n++
		last = slices.Clone(it.Key())
	}
	return n, last, it.Error()
}

func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	end[len(end)-1]++
	return end
}

func queueKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(queuePrefix), seq)
}

func deadKey(id string) []byte { return append(slices.Clone(deadPrefix), id...) }

// Close closes the outbox. Stop Run (cancel its context) first.
func (e *Exporter) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	if err := e.db.Close(); err != nil {
		return fmt.Errorf("export: close outbox: %w", err)
	}
	return nil
}

// Subscribe joins the bus (if one is configured) for as long as ctx lasts. Call it before
// accepting readings so that none published in between is missed (a new group on a durable bus
// starts with what is published after it subscribes); Run calls it if it has not been called.
func (e *Exporter) Subscribe(ctx context.Context) error {
	if e.cfg.Bus == nil || e.subscribed.Swap(true) {
		return nil
	}
	if err := e.cfg.Bus.Subscribe(ctx, e.cfg.Group, e.Enqueue); err != nil {
		e.subscribed.Store(false)
		return fmt.Errorf("export: subscribe as %q: %w", e.cfg.Group, err)
	}
	return nil
}

// Run subscribes to the bus (unless Subscribe did) and delivers the outbox until ctx ends.
func (e *Exporter) Run(ctx context.Context) error {
	if err := e.Subscribe(ctx); err != nil {
		return err
	}
	e.signal() // deliver what a previous run left
	attempt := 0
	for {
		batch, err := e.peek(e.cfg.BatchSize)
		if err != nil {
			return err
		}
		wait := time.Duration(-1)
		if len(batch) > 0 && len(batch) < e.cfg.BatchSize {
			age := e.cfg.Now().Sub(time.UnixMilli(batch[0].Enqueued))
			if age < e.cfg.BatchDelay {
				wait = e.cfg.BatchDelay - age // let the batch fill a little
			}
		}
		if len(batch) == 0 || wait >= 0 {
			if err := e.sleep(ctx, wait, true); err != nil {
				return nil
			}
			continue
		}
		delay, err := e.deliver(ctx, batch)
		if err == nil {
			attempt = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		e.retries.Inc()
		d := e.backoff(attempt)
		if delay > d {
			d = min(delay, maxRetryAfter) // the EHR knows best, within reason
		}
		e.log.Warn("export: EHR delivery failed, will retry", "target", e.target, "entries", len(batch), "attempt", attempt, "retry_in", d, "err", err)
		if err := e.sleep(ctx, d, false); err != nil {
			return nil
		}
	}
}

// maxRetryAfter bounds an EHR's Retry-After, so a bad header cannot stop the export for days.
const maxRetryAfter = time.Hour

// backoff is exponential with full jitter: a fleet of exporters does not retry in step.
func (e *Exporter) backoff(attempt int) time.Duration {
	ceil := e.cfg.MaxBackoff
	if attempt < 30 {
		ceil = min(e.cfg.MaxBackoff, e.cfg.MinBackoff<<attempt)
	}
	return e.cfg.MinBackoff/2 + rand.N(ceil-e.cfg.MinBackoff/2+1)
}

// sleep waits d (forever if d < 0), or until new entries arrive when wakeable.
func (e *Exporter) sleep(ctx context.Context, d time.Duration, wakeable bool) error {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	wake := e.wake
	if !wakeable {
		wake = nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer:
	case <-wake:
	}
	return nil
}

func (e *Exporter) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Enqueue maps a batch's selected readings to Observations and writes them to the outbox
// durably (fsync) before it returns: it is the bus handler.
func (e *Exporter) Enqueue(ctx context.Context, b iomt.Batch) error {
	var sel []iomt.Observation
	for _, o := range b.Observations {
		if e.want[o.Code] {
			if o.Patient == "" {
				o.Patient = b.Patient
			}
			if o.Device == "" {
				o.Device = b.Device
			}
			sel = append(sel, o)
		}
	}
	if len(sel) == 0 {
		return nil
	}
	obs, err := e.m.Observations(sel)
	if err != nil {
		return fmt.Errorf("export: map batch of device %s: %w", b.Device, err)
	}
	now := e.cfg.Now().UnixMilli()
	// Encode (and look up MRNs, which may read the registry) before taking the lock.
	vals := make([][]byte, 0, len(obs))
	for _, o := range obs {
		if ident := e.patientIdentifier(ctx, o.Subject.Reference); ident != nil {
			o.Subject.Identifier = ident
		}
		raw, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("export: encode %s: %w", o.ID, err)
		}
		v, err := json.Marshal(entry{ID: o.ID, Resource: raw, Enqueued: now})
		if err != nil {
			return fmt.Errorf("export: encode %s: %w", o.ID, err)
		}
		vals = append(vals, v)
	}
	batch := e.db.NewBatch()
	defer batch.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("export: closed")
	}
	first := e.seq
	for _, v := range vals {
		e.seq++
		if err := batch.Set(queueKey(e.seq), v, nil); err != nil {
			return fmt.Errorf("export: outbox: %w", err)
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		e.seq = first
		return fmt.Errorf("export: write outbox: %w", err)
	}
	e.queued.Add(float64(len(obs)))
	e.depth.Add(float64(len(obs)))
	e.signal()
	return nil
}

// patientIdentifier returns the MRN identifier of a Patient/{id} reference, if known. The
// registry is read without e.mu held.
func (e *Exporter) patientIdentifier(ctx context.Context, ref string) *fhir.Identifier {
	if e.cfg.Registry == nil {
		return nil
	}
	id := strings.TrimPrefix(ref, "Patient/")
	e.mu.Lock()
	mrn, ok := e.mrn[id]
	e.mu.Unlock()
	if !ok {
		p, err := e.cfg.Registry.Patient(ctx, id)
		if err != nil && !errors.Is(err, iomt.ErrNotFound) {
			e.log.Warn("export: patient lookup failed; plain reference", "patient", id, "err", err)
			return nil
		}
		mrn = p.MRN
		e.mu.Lock()
		e.mrn[id] = mrn
		e.mu.Unlock()
	}
	if mrn == "" {
		return nil
	}
	return &fhir.Identifier{System: cmp.Or(e.cfg.MRNSystem, fhir.DefaultMRNSystem), Value: mrn}
}

// peek reads up to n entries from the head of the outbox.
func (e *Exporter) peek(n int) ([]entry, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: queuePrefix, UpperBound: prefixEnd(queuePrefix)})
	if err != nil {
		return nil, fmt.Errorf("export: read outbox: %w", err)
	}
	defer it.Close()
	var out []entry
	for it.First(); it.Valid() && len(out) < n; it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("export: read outbox: %w", err)
		}
		var en entry
		if err := json.Unmarshal(v, &en); err != nil {
			return nil, fmt.Errorf("export: outbox entry %x is corrupt: %w", it.Key(), err)
		}
		en.seq = binary.BigEndian.Uint64(it.Key()[len(queuePrefix):])
		out = append(out, en)
	}
	return out, it.Error()
}

// retryable is a delivery failure that is not the entries' fault.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// deliver sends entries as one transaction. Entries the EHR accepts leave the outbox; entries
// it refuses (4xx) are isolated by halving the transaction (a transaction fails as a whole)
// and dead-lettered. It returns the Retry-After delay with a retryable error.
func (e *Exporter) deliver(ctx context.Context, batch []entry) (time.Duration, error) {
	status, body, hdr, err := e.post(ctx, batch)
	if err != nil {
		return 0, &retryable{err: err}
	}
	switch {
	case status >= 200 && status < 300:
		return 0, e.settle(batch, body)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return retryAfter(hdr.Get("Retry-After"), e.cfg.Now()), &retryable{err: fmt.Errorf("EHR answered %d", status)}
	case status >= 500 || status == http.StatusRequestTimeout:
		return 0, &retryable{err: fmt.Errorf("EHR answered %d", status)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// Our credentials, not the entries: retry, loudly.
		e.log.Error("export: the EHR refuses our credentials", "target", e.target, "status", status)
		return 0, &retryable{err: fmt.Errorf("EHR answered %d: check the export credentials", status)}
	case status == http.StatusNotFound && len(batch) > 1:
		// Probably a wrong base URL rather than one bad entry: isolate anyway, halves first.
		fallthrough
	default:
		if len(batch) == 1 {
			return 0, e.deadLetter(batch[0], status, outcomeText(body))
		}
		half := len(batch) / 2
		if d, err := e.deliver(ctx, batch[:half]); err != nil {
			return d, err
		}
		return e.deliver(ctx, batch[half:])
	}
}

func (e *Exporter) post(ctx context.Context, batch []entry) (int, []byte, http.Header, error) {
	b := fhir.Bundle{ResourceType: "Bundle", Type: "transaction"}
	for _, en := range batch {
		b.Entry = append(b.Entry, fhir.BundleEntry{
			FullURL:  strings.TrimSuffix(e.cfg.URL, "/") + "/Observation/" + en.ID,
			Resource: en.Resource,
			Request:  &fhir.BundleEntryRequest{Method: http.MethodPut, URL: "Observation/" + en.ID},
		})
	}
	body, err := json.Marshal(b)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("encode transaction: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", fhir.ContentType)
	req.Header.Set("Accept", fhir.ContentType)
	switch {
	case e.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+e.cfg.Token)
	case e.cfg.Username != "":
		req.SetBasicAuth(e.cfg.Username, e.cfg.Password)
	}
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("post transaction to %s: %w", e.target, redact(err))
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read EHR response: %w", err)
	}
	return resp.StatusCode, rb, resp.Header, nil
}

// redact keeps a url.Error's message but never its URL's userinfo (there is none, as New
// refuses it, but a redirect could add one).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = u.Redacted()
		}
	}
	return err
}

// settle removes delivered entries; a batch-style response with a per-entry 4xx dead-letters
// that entry (a transaction answers 2xx only when every entry succeeded).
func (e *Exporter) settle(batch []entry, body []byte) error {
	var resp struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(body, &resp) // an empty or odd 2xx body still means success
	wb := e.db.NewBatch()
	defer wb.Close()
	type refused struct{ i, status int }
	var deadOnes []refused
	for i, en := range batch {
		if i < len(resp.Entry) {
			code, _ := strconv.Atoi(strings.Fields(resp.Entry[i].Response.Status + " 0")[0])
			if code >= 400 && code < 500 {
				deadOnes = append(deadOnes, refused{i, code})
				continue
			}
		}
		if err := wb.Delete(queueKey(en.seq), nil); err != nil {
			return fmt.Errorf("export: outbox: %w", err)
		}
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	n := len(batch) - len(deadOnes)
	e.sent.Add(float64(n))
	e.depth.Sub(float64(n))
	for _, d := range deadOnes {
		if err := e.deadLetter(batch[d.i], d.status, outcomeText(resp.Entry[d.i].Response.Outcome)); err != nil {
			return err
		}
	}
	return nil
}

func (e *Exporter) deadLetter(en entry, status int, reason string) error {
	dl := DeadLetter{ID: en.ID, Status: status, Reason: reason, At: e.cfg.Now().UTC(), Attempts: en.Attempts + 1, Resource: en.Resource}
	v, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("export: encode dead letter: %w", err)
	}
	wb := e.db.NewBatch()
	defer wb.Close()
	if err := wb.Delete(queueKey(en.seq), nil); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	if err := wb.Set(deadKey(en.ID), v, nil); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	e.dead.Inc()
	e.depth.Dec()
	e.deadDepth.Set(float64(e.deadCount()))
	e.log.Warn("export: the EHR refused an observation; dead-lettered", "observation", en.ID, "status", status, "reason", reason)
	return nil
}

func (e *Exporter) deadCount() int {
	n, _, _ := e.count(deadPrefix)
	return n
}

// outcomeText extracts the diagnostics of an OperationOutcome, or a bounded prefix of the body.
func outcomeText(body []byte) string {
	var oo fhir.OperationOutcome
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		var parts []string
		for _, is := range oo.Issue {
			parts = append(parts, strings.TrimSpace(is.Code+": "+is.Diagnostics))
		}
		return strings.Join(parts, "; ")
	}
	s := string(body)
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// DeadLetters lists the dead-letter list, oldest id first.
func (e *Exporter) DeadLetters() ([]DeadLetter, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: deadPrefix, UpperBound: prefixEnd(deadPrefix)})
	if err != nil {
		return nil, fmt.Errorf("export: read dead letters: %w", err)
	}
	defer it.Close()
	out := []DeadLetter{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("export: read dead letters: %w", err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(v, &dl); err != nil {
			return nil, fmt.Errorf("export: dead letter %q is corrupt: %w", it.Key(), err)
		}
		out = append(out, dl)
	}
	return out, it.Error()
}

// Retry moves a dead letter back to the outbox (iomt.ErrNotFound if there is none).
func (e *Exporter) Retry(id string) error {
	key := deadKey(id)
	v, closer, err := e.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("export: dead letter %q: %w", id, iomt.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("export: read dead letter: %w", err)
	}
	var dl DeadLetter
	err = json.Unmarshal(v, &dl)
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("export: dead letter %q is corrupt: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	raw, err := json.Marshal(entry{ID: dl.ID, Resource: dl.Resource, Enqueued: e.cfg.Now().UnixMilli(), Attempts: dl.Attempts})
	if err != nil {
		return fmt.Errorf("export: encode: %w", err)
	}
	wb := e.db.NewBatch()
	defer wb.Close()
	e.seq++
	if err := wb.Set(queueKey(e.seq), raw, nil); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	if err := wb.Delete(key, nil); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("export: outbox: %w", err)
	}
	e.depth.Inc()
	e.deadDepth.Set(float64(e.deadCount()))
	e.signal()
	return nil
}

// Pending is the number of Observations waiting for delivery.
func (e *Exporter) Pending() (int, error) {
	n, _, err := e.count(queuePrefix)
	return n, err
}

// Handler serves the dead-letter list: GET lists it; POST …/{id}/retry re-queues one entry.
// It works wherever it is mounted (with or without http.StripPrefix). The list holds patient
// data: mount it behind the admin authentication (or set Config.Authorize).
func (e *Exporter) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.cfg.Authorize != nil {
			if _, ok := e.cfg.Authorize(r); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="iomt"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
				return
			}
		}
		path := strings.TrimSuffix(r.URL.Path, "/")
		if rest, ok := strings.CutSuffix(path, "/retry"); ok {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST to retry"})
				return
			}
			id := rest[strings.LastIndexByte(rest, '/')+1:]
			if err := e.Retry(id); err != nil {
				if errors.Is(err, iomt.ErrNotFound) {
					writeJSON(w, http.StatusNotFound, map[string]string{"error": "no dead letter " + id})
					return
				}
				e.log.Error("export: retry dead letter", "id", id, "err", err)
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
				return
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "queued"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET the list, POST {id}/retry"})
			return
		}
		dls, err := e.DeadLetters()
		if err != nil {
			e.log.Error("export: list dead letters", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"deadLetters": dls})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// pebbleLogger sends Pebble's log to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
