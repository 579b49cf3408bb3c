package fhir

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/codes"
)

// validID is FHIR's rule for a logical id.
var validID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether s is a valid FHIR logical id.
func ValidID(s string) bool { return validID.MatchString(s) }

// idEncoding is base64url with '.' in place of '_': FHIR's id alphabet is exactly these 64
// characters, so an Observation id packs 6 bits per character.
var idEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.").WithPadding(base64.NoPadding)

// registryIDs is the alphabet of the ids the registry generates (10 bytes); such ids are
// packed to their 10 bytes so that an Observation id stays within 64 characters.
var registryIDs = iomt.IDEncoding

// ObsKind says what an Observation id points at.
type ObsKind byte

// Observation id kinds. The values are part of the ids handed out: never renumber.
const (
	KindReading  ObsKind = 'r' // one stored reading
	KindBPPanel  ObsKind = 'b' // the systolic and diastolic readings of one device at one time
	KindWaveform ObsKind = 'w' // one window of one device's waveform: pleth, or CodeECG for all ECG leads
	KindScore    ObsKind = 's' // an analytics result (NEWS2 and the like)
)

// ObsKey identifies the iomt data behind an Observation resource. It is what the id encodes,
// so that GET Observation/{id} finds the data again without an index.
type ObsKey struct {
	Kind    ObsKind
	Patient string
	Device  string
	Code    string    // catalog ID; the panel's for KindBPPanel; the score's code for KindScore
	Time    time.Time // the reading's time; the window's start for KindWaveform
}

const idVersion = 1

// ObservationID returns the deterministic id of the Observation for k: the same reading always
// gets the same id, so reads by id work and exports can PUT without duplicating. Codes are
// encoded by their MDC number where the catalog has one (a standard's number, stable across
// catalog versions), else by the code ID itself.
func ObservationID(cat *codes.Catalog, k ObsKey) (string, error) {
	b := make([]byte, 0, 48)
	b = append(b, idVersion, byte(k.Kind))
	c, ok := cat.ByID(k.Code)
	switch {
	case k.Kind == KindScore:
		b = appendStr(b, k.Code)
	case !ok:
		return "", fmt.Errorf("fhir: observation id: code %q is not in the catalog: %w", k.Code, iomt.ErrInvalid)
	case c.MDCCode != 0:
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(c.MDCCode))
	default:
		b = append(b, 'c')
		b = appendStr(b, c.ID)
	}
	b = binary.AppendVarint(b, iomt.Millis(k.Time))
	b = appendID(b, k.Patient)
	b = appendID(b, k.Device)
	id := idEncoding.EncodeToString(b)
	if len(id) > 64 {
		return "", fmt.Errorf("fhir: observation id: patient %q and device %q too long for a 64-character id: %w", k.Patient, k.Device, iomt.ErrInvalid)
	}
	return id, nil
}

var errBadID = errors.New("not an iomt observation id")

// ParseObservationID is the inverse of ObservationID.
func ParseObservationID(cat *codes.Catalog, id string) (ObsKey, error) {
	if !ValidID(id) {
		return ObsKey{}, errBadID
	}
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) < 3 || b[0] != idVersion {
		return ObsKey{}, errBadID
	}
	k := ObsKey{Kind: ObsKind(b[1])}
	b = b[2:]
	switch k.Kind {
	case KindReading, KindBPPanel, KindWaveform:
		if len(b) == 0 {
			return ObsKey{}, errBadID
		}
		tag := b[0]
		b = b[1:]
		var name string
		switch tag {
		case 'm':
			n, w := binary.Uvarint(b)
			if w <= 0 {
				return ObsKey{}, errBadID
			}
			b = b[w:]
			name = strconv.FormatUint(n, 10)
		case 'c':
			if name, b, err = readStr(b); err != nil {
				return ObsKey{}, errBadID
			}
		default:
			return ObsKey{}, errBadID
		}
		c, ok := cat.Lookup(name)
		if !ok {
			return ObsKey{}, errBadID
		}
		k.Code = c.ID
	case KindScore:
		if k.Code, b, err = readStr(b); err != nil {
			return ObsKey{}, errBadID
		}
	default:
		return ObsKey{}, errBadID
	}
	ms, w := binary.Varint(b)
	if w <= 0 {
		return ObsKey{}, errBadID
	}
	b = b[w:]
	k.Time = iomt.FromMillis(ms)
	if k.Patient, b, err = readID(b); err != nil {
		return ObsKey{}, errBadID
	}
	if k.Device, b, err = readID(b); err != nil || len(b) != 0 {
		return ObsKey{}, errBadID
	}
	// Only the canonical encoding is accepted, so one reading has exactly one id.
	if again, err := ObservationID(cat, k); err != nil || again != id {
		return ObsKey{}, errBadID
	}
	return k, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readStr(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, errBadID
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// packedID marks, in the length byte, an id stored as its 10 base32-decoded bytes.
const packedID = 0x80

func appendID(b []byte, s string) []byte {
	if len(s) == 16 {
		if raw, err := registryIDs.DecodeString(s); err == nil && registryIDs.EncodeToString(raw) == s {
			b = append(b, packedID|byte(len(raw)))
			return append(b, raw...)
		}
	}
	if len(s) >= packedID {
		// Cannot be encoded; ObservationID's length check refuses it anyway.
		s = s[:packedID-1]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func readID(b []byte) (string, []byte, error) {
	if len(b) == 0 {
		return "", nil, errBadID
	}
	n := int(b[0] &^ packedID)
	packed := b[0]&packedID != 0
	b = b[1:]
	if len(b) < n {
		return "", nil, errBadID
	}
	raw, rest := b[:n], b[n:]
	if packed {
		return registryIDs.EncodeToString(raw), rest, nil
	}
	return string(raw), rest, nil
}
