package wfdb

import (
	"fmt"
	"strings"
)

// Annotation is one annotation of an MIT-format annotation file.
type Annotation struct {
	Sample int64 // sample number (time) of the annotation
	Code   Code
	Sub    int
	Chan   int
	Num    int
	Aux    string // e.g. "(AFIB" on rhythm annotations; trailing NULs removed
}

// Code is a WFDB annotation code (ecgcodes.h).
type Code uint8

// Annotation codes used by the MIT-BIH databases.
const (
	NotQRS   Code = 0
	Normal   Code = 1  // N
	LBBB     Code = 2  // L
	RBBB     Code = 3  // R
	Aberr    Code = 4  // a
	PVC      Code = 5  // V
	Fusion   Code = 6  // F
	NPC      Code = 7  // J
	APC      Code = 8  // A
	SVPB     Code = 9  // S
	VEsc     Code = 10 // E
	NEsc     Code = 11 // j
	Pace     Code = 12 // /
	Unknown  Code = 13 // Q
	Noise    Code = 14 // ~
	Artifact Code = 16 // |
	STChange Code = 18 // s
	TChange  Code = 19 // T
	Systole  Code = 20 // *
	Diastole Code = 21 // D
	Note     Code = 22 // "
	Measure  Code = 23 // =
	PWave    Code = 24 // p
	BBB      Code = 25 // B
	PaceSP   Code = 26 // ^
	TWave    Code = 27 // t
	Rhythm   Code = 28 // +
	UWave    Code = 29 // u
	Learn    Code = 30 // ?
	FlutterW Code = 31 // !
	VFOn     Code = 32 // [
	VFOff    Code = 33 // ]
	AEsc     Code = 34 // e
	SVEsc    Code = 35 // n
	Link     Code = 36 // @
	NAPC     Code = 37 // x
	PFus     Code = 38 // f
	WFOn     Code = 39 // (
	WFOff    Code = 40 // )
	RonT     Code = 41 // r
)

var mnemonics = [...]string{
	0: " ", 1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E",
	11: "j", 12: "/", 13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: "\"",
	23: "=", 24: "p", 25: "B", 26: "^", 27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[",
	33: "]", 34: "e", 35: "n", 36: "@", 37: "x", 38: "f", 39: "(", 40: ")", 41: "r",
}

// String returns the code's mnemonic as rdann prints it, or "[n]" for codes without one.
func (c Code) String() string {
	if int(c) < len(mnemonics) && mnemonics[c] != "" {
		return mnemonics[c]
	}
	return fmt.Sprintf("[%d]", uint8(c))
}

// IsBeat reports whether the code labels a QRS complex (the beat codes that ANSI/AAMI EC57
// counts: N L R B A a J S V r F e j n E / f Q ?).
func (c Code) IsBeat() bool {
	switch c {
	case Normal, LBBB, RBBB, BBB, APC, Aberr, NPC, SVPB, PVC, RonT, Fusion, AEsc, NEsc, SVEsc,
		VEsc, Pace, PFus, Unknown, Learn:
		return true
	}
	return false
}

// Pseudo-annotation codes of the MIT format; they modify the annotation they follow
// (NUM, SUB, CHN, AUX) or precede (SKIP).
const (
	codeSkip = 59
	codeNum  = 60
	codeSub  = 61
	codeChn  = 62
	codeAux  = 63
)

// maxAnnotations bounds the output of one parse; MIT-BIH records hold a few thousand.
const maxAnnotations = 1 << 24

// ParseAnnotations decodes an MIT-format annotation file. As in the WFDB library, CHN and NUM
// persist to subsequent annotations while SUB and AUX apply to one annotation only.
func ParseAnnotations(data []byte) ([]Annotation, error) {
	var (
		out     []Annotation
		t       int64
		chn     int
		num     int
		pending bool
		cur     Annotation
	)
	flush := func() {
		if pending {
			out = append(out, cur)
			pending = false
		}
	}
	i := 0
	for {
		if i+2 > len(data) {
			if i == len(data) {
				// Files without the terminating zero word are accepted.
				flush()
				return out, nil
			}
			return nil, fmt.Errorf("%w: annotation file ends inside a word at byte %d", ErrFormat, i)
		}
		w := uint16(data[i]) | uint16(data[i+1])<<8
		pos := i
		i += 2
		a, v := int(w>>10), int(w&0x3ff)
		switch {
		case a == 0 && v == 0:
			flush()
			return out, nil
		case a == codeSkip:
			if i+4 > len(data) {
				return nil, fmt.Errorf("%w: SKIP at byte %d is truncated", ErrFormat, pos)
			}
			// The interval is a PDP-11 long: high 16-bit word first, each word little-endian.
			hi := uint32(data[i]) | uint32(data[i+1])<<8
			lo := uint32(data[i+2]) | uint32(data[i+3])<<8
			i += 4
			t += int64(int32(hi<<16 | lo))
		case a == codeNum:
			if !pending {
				return nil, fmt.Errorf("%w: NUM at byte %d precedes any annotation", ErrFormat, pos)
			}
			num = signExtend10(v)
			cur.Num = num
		case a == codeSub:
			if !pending {
				return nil, fmt.Errorf("%w: SUB at byte %d precedes any annotation", ErrFormat, pos)
			}
			cur.Sub = signExtend10(v)
		case a == codeChn:
			if !pending {
				return nil, fmt.Errorf("%w: CHN at byte %d precedes any annotation", ErrFormat, pos)
			}
			chn = signExtend10(v)
			cur.Chan = chn
		case a == codeAux:
			if !pending {
				return nil, fmt.Errorf("%w: AUX at byte %d precedes any annotation", ErrFormat, pos)
			}
			if i+v > len(data) {
				return nil, fmt.Errorf("%w: AUX at byte %d claims %d bytes past the end", ErrFormat, pos, v)
			}
			cur.Aux = strings.TrimRight(string(data[i:i+v]), "\x00")
			i = min(i+v+v%2, len(data)) // padded to an even length
		default:
			flush()
			if len(out) >= maxAnnotations {
				return nil, fmt.Errorf("%w: more than %d annotations", ErrFormat, maxAnnotations)
			}
			t += int64(v)
			cur = Annotation{Sample: t, Code: Code(a), Chan: chn, Num: num}
			pending = true
		}
	}
}

func signExtend10(v int) int {
	if v >= 512 {
		return v - 1024
	}
	return v
}
