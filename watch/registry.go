package watch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/iomt/iomt"
)

// registryRetry is how soon a failed registry read is tried again.
const registryRetry = 5 * time.Second

// recordCache keeps one setting read from each patient's registry record (an SpO2 scale,
// CGM limits) and reads it again once it is ttl old. A time limit rather than a "patient
// updated" event: events are at most once, the record can be written through the REST API,
// FHIR or SQL on any node, and a re-read per patient per minute costs nothing, so the limit
// alone is both simpler and always right within ttl plus one tick, which is quick for a
// setting prescribed once per admission.
type recordCache[T comparable] struct {
	what string // for the log: "SpO2 scale"
	// read is the setting of a record, or why the record's setting is unusable.
	read func(iomt.Patient) (T, error)
	// absent is the setting of a patient the registry does not know, or of every patient
	// when there is no registry.
	absent T

	mu sync.Mutex
	m  map[string]cacheEntry[T]
}

// cacheEntry is a patient's cached setting; known is false until a read succeeded.
type cacheEntry[T any] struct {
	v     T
	known bool
	next  time.Time // when to read it again
}

func newRecordCache[T comparable](what string, read func(iomt.Patient) (T, error), absent T) *recordCache[T] {
	return &recordCache[T]{what: what, read: read, absent: absent, m: map[string]cacheEntry[T]{}}
}

// refresh reads the patient's record from reg if the cached setting is due. A patient reg
// does not know has the absent setting; a failed read keeps the cached setting (or leaves it
// unknown) and is tried again soon. Call it outside any lock of the caller: other partitions'
// batches must not wait on the registry.
func (c *recordCache[T]) refresh(ctx context.Context, reg PatientReader, patient string, now time.Time, ttl time.Duration, log *slog.Logger) {
	c.mu.Lock()
	e, ok := c.m[patient]
	c.mu.Unlock()
	if ok && now.Before(e.next) {
		return
	}
	nw := cacheEntry[T]{v: c.absent, known: true, next: now.Add(ttl)}
	if reg != nil {
		p, err := reg.Patient(ctx, patient)
		if err == nil {
			nw.v, err = c.read(p)
		}
		if err != nil && !errors.Is(err, iomt.ErrNotFound) {
			if ctx.Err() != nil {
				return
			}
			if log != nil {
				log.Warn("reading the patient's "+c.what, "patient", patient, "err", err)
			}
			nw = e
			nw.next = now.Add(min(registryRetry, ttl))
		}
	}
	c.mu.Lock()
	c.m[patient] = nw
	c.mu.Unlock()
}

// get returns the patient's cached setting; known is false until a read succeeded.
func (c *recordCache[T]) get(patient string) (v T, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[patient]
	return e.v, e.known
}

// forget drops the patient's setting.
func (c *recordCache[T]) forget(patient string) {
	c.mu.Lock()
	delete(c.m, patient)
	c.mu.Unlock()
}
