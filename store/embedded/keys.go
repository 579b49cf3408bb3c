package embedded

import (
	"encoding/binary"
	"math"
)

// Pebble key space. Series are referred to by a numeric id so chunk keys stay 18 bytes.
//
//	\x01 "walstart"                    first WAL segment not covered by persisted data (uint64 BE)
//	\x01 "nextid"                      next series id (uint64 BE)
//	's' id                             series definition
//	'c' id start kind                  observation chunk; kind 0 = in-order, 1 = late samples
//	'w' id start                       waveform segment
//	'p' id                             patient
//	'P' tenant 0 id                    patient by tenant
//	'M' tenant 0 mrn                   patient id by (tenant, MRN), unique
//	'd' id                             device
//	'D' tenant 0 id                    device by tenant
//	'B' patient 0 id                   device by patient
//	'I' 'u' id                         user (JSON, with its secrets)
//	'I' 'U' tenant 0 id                user by tenant
//	'I' 'l' tenant 0 login             user id by (tenant, iomt.LoginKey(login)), unique
//	'I' 'o' tenant 0 issuer 0 subject  user id by OpenID Connect identity, unique
//	'I' 't' id                         care team
//	'I' 'T' tenant 0 id                care team by tenant
//	'I' 'm' member 0 id                care team by member (user id)
//	'I' 's' id                         session
//	'I' 'S' user 0 id                  session by user
//	'I' 'e' expires id                 session by expiry, expires Unix ms (sortable BE)
//	'I' 'k' id                         API token (JSON, with its hash)
//	'I' 'b' id                         break-the-glass access
//	\x01 "audithead", \x02 ...           the audit trail (see audit.go)
//
// Alarm keys ('a', 'u', 'g', 'q') are listed in alarms.go.
var (
	keyWALStart = []byte("\x01walstart")
	keyNextID   = []byte("\x01nextid")
)

const (
	chunkMain = 0
	chunkLate = 1
)

// sortable maps an int64 to a uint64 with the same order.
func sortable(t int64) uint64 { return uint64(t) ^ 1<<63 }

func unsortable(u uint64) int64 { return int64(u ^ 1<<63) }

func seriesKey(id uint64) []byte {
	k := make([]byte, 9)
	k[0] = 's'
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

func chunkKey(id uint64, start int64, kind byte) []byte {
	k := make([]byte, 18)
	k[0] = 'c'
	binary.BigEndian.PutUint64(k[1:], id)
	binary.BigEndian.PutUint64(k[9:], sortable(start))
	k[17] = kind
	return k
}

// chunkBounds returns the key range of the chunks of series id starting in [from, to).
func chunkBounds(id uint64, from, to int64) (lo, hi []byte) {
	lo = chunkKey(id, from, 0)
	if to == math.MaxInt64 {
		hi = chunkKey(id+1, math.MinInt64, 0)
	} else {
		hi = chunkKey(id, to, 0)
	}
	return lo, hi
}

func parseChunkKey(k []byte) (id uint64, start int64, kind byte, ok bool) {
	if len(k) != 18 || k[0] != 'c' {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), unsortable(binary.BigEndian.Uint64(k[9:])), k[17], true
}

func waveKey(id uint64, start int64) []byte {
	k := make([]byte, 17)
	k[0] = 'w'
	binary.BigEndian.PutUint64(k[1:], id)
	binary.BigEndian.PutUint64(k[9:], sortable(start))
	return k
}

func parseWaveKey(k []byte) (id uint64, start int64, ok bool) {
	if len(k) != 17 || k[0] != 'w' {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), unsortable(binary.BigEndian.Uint64(k[9:])), true
}

func strKey(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// prefixEnd returns the smallest key greater than every key with the prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
