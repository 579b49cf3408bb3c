package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/iomt/iomt"
)

// Kinds of Problem.
const (
	ProblemEdited     = "edited"     // a record's content does not match its hash
	ProblemDeleted    = "deleted"    // records are missing: a gap in Seq
	ProblemInserted   = "inserted"   // a record that the chain goes around
	ProblemReordered  = "reordered"  // a record holds what belongs elsewhere in the chain
	ProblemBroken     = "broken"     // a record does not chain to the one before, for a reason not told apart
	ProblemRewritten  = "rewritten"  // the chain is consistent but not the one a checkpoint signed
	ProblemTruncated  = "truncated"  // the trail ends before a signed checkpoint
	ProblemCheckpoint = "checkpoint" // a checkpoint's signature is bad or by an unknown key
	ProblemUnreadable = "unreadable" // the store cannot decode a record
)

// Problem is the first bad record Verify found.
type Problem struct {
	Seq    uint64 // the first record that is not as it was written
	Kind   string // Problem* above
	Reason string // for a person: what is wrong and what it means
}

func (p *Problem) Error() string { return fmt.Sprintf("record %d: %s", p.Seq, p.Reason) }

// Report is what Verify found.
type Report struct {
	// Records is how many records were verified as written: the whole trail when Problem is
	// nil, else those before the problem.
	Records uint64
	// LastSeq and LastHash are the last good record's.
	LastSeq  uint64
	LastHash []byte
	// Checkpoints is how many signed checkpoints matched the chain; LastCheckpoint the
	// latest of them.
	Checkpoints    int
	LastCheckpoint *iomt.AuditCheckpoint
	// Problem is the first bad record, nil if the trail is intact.
	Problem *Problem
}

// OK reports whether the trail is intact.
func (r Report) OK() bool { return r.Problem == nil }

// pageSize is how many records Verify reads at once.
const pageSize = 4096

// lookahead is how many records past a broken link are examined to tell an insertion from a
// reordering.
const lookahead = 16

// Verify walks the whole trail: it recomputes every record's hash and link, checks every
// checkpoint's signature against keys and that each checkpoint's (Seq, Hash) is in the chain,
// and reports the first bad record (Report.Problem). A checkpoint signed by a key not in keys
// is a problem too: pass the public key of every node that writes to the trail. The error is
// for failures to read the store, not for a bad trail.
func Verify(ctx context.Context, store iomt.AuditStore, keys []ed25519.PublicKey) (Report, error) {
	cps, err := store.AuditCheckpoints(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	v := newVerifier(cps, keys)
	var after, unreadable uint64 // unreadable: a record the store cannot decode
	var unreadableErr error
walk:
	for {
		limit := uint64(pageSize)
		if unreadable > 0 {
			// Verify the records before the unreadable one, then report it.
			if unreadable == after+1 {
				v.fail(unreadable, ProblemUnreadable, fmt.Sprintf("the store cannot read it (%v): its stored bytes were damaged or edited", unreadableErr))
				break
			}
			limit = min(limit, unreadable-1-after)
		}
		page, err := store.AuditEvents(ctx, iomt.AuditFilter{AfterSeq: after, Limit: int(limit)})
		var re *iomt.AuditRecordError
		if errors.As(err, &re) && re.Seq > after && (unreadable == 0 || re.Seq < unreadable) {
			unreadable, unreadableErr = re.Seq, re.Err
			continue
		}
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			// Only a broken link looks ahead, to tell an insertion from a reordering; near
			// the end of a page, into the next.
			ahead := func() []iomt.AuditEvent {
				a := page[i+1:]
				if len(a) < lookahead && len(page) == pageSize {
					if more, err := store.AuditEvents(ctx, iomt.AuditFilter{AfterSeq: page[len(page)-1].Seq, Limit: lookahead}); err == nil {
						a = append(a[:len(a):len(a)], more...)
					}
				}
				return a
			}
			if !v.next(&page[i], ahead) {
				break walk
			}
		}
		after = page[len(page)-1].Seq
	}
	v.finish()
	return v.report(), nil
}

// verifier checks records one after the other.
type verifier struct {
	keys    map[string]ed25519.PublicKey
	cps     []iomt.AuditCheckpoint // by Seq
	bySeq   map[uint64][]int       // checkpoints by Seq
	signed  []bool                 // the checkpoint's signature is good, by a trusted key
	problem *Problem

	n          uint64 // records verified
	seq        uint64 // last good record
	hash       []byte
	hashBefore []byte // the hash of the record before the last good one
	goodCp     int    // checkpoints matched
	lastCp     *iomt.AuditCheckpoint
	lastCpSeq  uint64 // the last checkpoint matched, for naming a rewritten range
}

func newVerifier(cps []iomt.AuditCheckpoint, keys []ed25519.PublicKey) *verifier {
	v := &verifier{keys: map[string]ed25519.PublicKey{}, cps: cps, bySeq: map[uint64][]int{}, hash: iomt.GenesisHash()}
	for _, k := range keys {
		v.keys[KeyID(k)] = k
	}
	for i, c := range cps {
		v.bySeq[c.Seq] = append(v.bySeq[c.Seq], i)
	}
	// A checkpoint with a bad signature or an unknown key is a problem at its Seq, found
	// before the walk; the walk may find an earlier one, which then wins.
	v.signed = make([]bool, len(cps))
	for i, c := range cps {
		k, ok := v.keys[c.KeyID]
		switch {
		case !ok:
			v.fail(c.Seq, ProblemCheckpoint, fmt.Sprintf("the checkpoint at record %d (signed %s) is by key %s, which is not among the trusted public keys: add that node's audit.pub, or the checkpoint is forged", c.Seq, stamp(c.Time), c.KeyID))
		case !ed25519.Verify(k, c.CheckpointMessage(), c.Signature):
			v.fail(c.Seq, ProblemCheckpoint, fmt.Sprintf("the checkpoint at record %d (key %s, %s) has a bad signature: it was forged or altered", c.Seq, c.KeyID, stamp(c.Time)))
		default:
			v.signed[i] = true
		}
	}
	return v
}

// span names records a to b: "record 7 was", "records 7 to 9 were".
func span(a, b uint64) string {
	if a == b {
		return fmt.Sprintf("record %d was", a)
	}
	return fmt.Sprintf("records %d to %d were", a, b)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// fail keeps the problem with the lowest Seq.
func (v *verifier) fail(seq uint64, kind, reason string) {
	if v.problem == nil || seq < v.problem.Seq {
		v.problem = &Problem{Seq: seq, Kind: kind, Reason: reason}
	}
}

// next checks record e, the records after it in store order being ahead; false stops the
// walk (a problem was found).
func (v *verifier) next(e *iomt.AuditEvent, ahead func() []iomt.AuditEvent) bool {
	if v.problem != nil && v.problem.Seq <= e.Seq {
		return false
	}
	want := v.seq + 1
	switch {
	case e.Seq > want:
		what := fmt.Sprintf("record %d is missing", want)
		if e.Seq > want+1 {
			what = fmt.Sprintf("records %d to %d are missing", want, e.Seq-1)
		}
		v.fail(want, ProblemDeleted, fmt.Sprintf("%s: the trail goes from record %d to record %d (deleted)", what, v.seq, e.Seq))
		return false
	case e.Seq < want:
		v.fail(want, ProblemReordered, fmt.Sprintf("record %d comes after record %d: records were reordered or duplicated", e.Seq, v.seq))
		return false
	}
	if !bytes.Equal(e.Prev, v.hash) {
		seq, kind, reason := v.diagnose(e, ahead())
		if seq == v.seq {
			// The last record taken as good is the inserted one: it is not counted.
			v.n, v.seq, v.hash = v.n-1, v.seq-1, v.hashBefore
		}
		v.fail(seq, kind, reason)
		return false
	}
	if h := e.ChainHash(e.Prev); !bytes.Equal(h, e.Hash) {
		v.fail(want, ProblemEdited, fmt.Sprintf("its content does not match its hash: the record was edited after it was written (%s by %s at %s)", e.Action, e.Actor, stamp(e.Time)))
		return false
	}
	for _, i := range v.bySeq[e.Seq] {
		c := &v.cps[i]
		if !bytes.Equal(c.Hash, e.Hash) {
			from := v.lastCpSeq + 1
			v.fail(from, ProblemRewritten, fmt.Sprintf("the chain is consistent but is not the one signed at record %d (key %s, %s): %s rewritten and their hashes recomputed", e.Seq, c.KeyID, stamp(c.Time), span(from, e.Seq)))
			return false
		}
		v.goodCp++ // its signature was checked: a bad one stopped the walk before this record
		v.lastCp = c
		v.lastCpSeq = c.Seq
	}
	v.n++
	v.hashBefore, v.seq, v.hash = v.hash, e.Seq, e.Hash
	return true
}

// diagnose says why e, whose Prev is not the last good record's hash, is out of line.
func (v *verifier) diagnose(e *iomt.AuditEvent, ahead []iomt.AuditEvent) (uint64, string, string) {
	want := v.seq + 1
	// The record before was inserted: e chains to the one before that.
	if v.seq > 0 && bytes.Equal(e.Prev, v.hashBefore) {
		return v.seq, ProblemInserted, fmt.Sprintf("it was inserted: record %d chains to record %d, around it", want, v.seq-1)
	}
	// e holds a record that belongs after one further on.
	for _, a := range ahead {
		if bytes.Equal(e.Prev, a.Hash) {
			return want, ProblemReordered, fmt.Sprintf("it is out of order: it chains to the record stored as %d, which comes after it (records were swapped or moved)", a.Seq)
		}
	}
	// e was inserted: the next record chains to the last good one, around e.
	if len(ahead) > 0 && bytes.Equal(ahead[0].Prev, v.hash) {
		return want, ProblemInserted, fmt.Sprintf("it was inserted: record %d chains to record %d, around it", ahead[0].Seq, v.seq)
	}
	for _, a := range ahead {
		if bytes.Equal(a.Prev, v.hash) {
			return want, ProblemReordered, fmt.Sprintf("it is out of order: the record stored as %d is the one that follows record %d", a.Seq, v.seq)
		}
	}
	return want, ProblemBroken, fmt.Sprintf("it does not chain to record %d (its prev is not that record's hash): a record before it was deleted and the rest renumbered, or it was replaced or moved here", v.seq)
}

// finish checks that no checkpoint lies past the end of the trail.
func (v *verifier) finish() {
	for i := len(v.cps) - 1; i >= 0; i-- {
		c := v.cps[i]
		if v.signed[i] && c.Seq > v.seq && (v.problem == nil || v.problem.Seq > v.seq+1) {
			v.fail(v.seq+1, ProblemTruncated, fmt.Sprintf("the trail ends at record %d but a checkpoint signed %s (key %s) covers %d records: %s removed", v.seq, stamp(c.Time), c.KeyID, c.Seq, span(v.seq+1, c.Seq)))
			return
		}
	}
}

func (v *verifier) report() Report {
	return Report{Records: v.n, LastSeq: v.seq, LastHash: v.hash, Checkpoints: v.goodCp, LastCheckpoint: v.lastCp, Problem: v.problem}
}
