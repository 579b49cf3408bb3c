package hl7v2

import (
	"strconv"
	"strings"
)

// unescape decodes HL7 escape sequences (v2.6 section 2.7) in one leaf value.
//
// Delimiter escapes (\F\ \S\ \T\ \R\ \E\, and \P\ for v2.7's truncation character) and hex
// data (\Xhh...\) become the bytes they stand for. Of the formatting commands, the line breaks
// (\.br\, \.sp n\, \.ce\) become newlines because they carry meaning in a note; highlighting
// (\H\ \N\), the other formatting commands and character-set switches (\C..\ \M..\) are
// dropped, since the result is plain text. HL7 asks receivers to ignore sequences they do not
// recognise; an unknown or unterminated sequence is kept verbatim so that no text is lost.
func unescape(s string, d *Delimiters) string {
	i := strings.IndexByte(s, d.Escape)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i+1:]
		end := strings.IndexByte(s, d.Escape)
		if end < 0 {
			// Unterminated: keep the escape character and the rest as they are.
			b.WriteByte(d.Escape)
			b.WriteString(s)
			return b.String()
		}
		seq := s[:end]
		if !decodeEscape(&b, seq, d) {
			b.WriteByte(d.Escape)
			b.WriteString(seq)
			b.WriteByte(d.Escape)
		}
		s = s[end+1:]
		i = strings.IndexByte(s, d.Escape)
	}
	b.WriteString(s)
	return b.String()
}

// decodeEscape writes what seq (the text between two escape characters) stands for and
// reports whether it was recognised.
func decodeEscape(b *strings.Builder, seq string, d *Delimiters) bool {
	switch seq {
	case "F":
		b.WriteByte(d.Field)
		return true
	case "S":
		b.WriteByte(d.Component)
		return true
	case "T":
		b.WriteByte(d.Subcomponent)
		return true
	case "R":
		b.WriteByte(d.Repetition)
		return true
	case "E":
		b.WriteByte(d.Escape)
		return true
	case "P":
		b.WriteByte(d.truncation())
		return true
	case "H", "N":
		return true
	case "":
		return false
	}
	switch seq[0] {
	case 'X':
		hex := seq[1:]
		if len(hex) == 0 || len(hex)%2 != 0 {
			return false
		}
		out := make([]byte, 0, len(hex)/2)
		for j := 0; j < len(hex); j += 2 {
			v, err := strconv.ParseUint(hex[j:j+2], 16, 8)
			if err != nil {
				return false
			}
			out = append(out, byte(v))
		}
		b.Write(out)
		return true
	case 'C', 'M':
		return isHex(seq[1:]) && len(seq) > 1
	case 'Z':
		// Locally defined: nothing here defines any, so keep it for whoever reads the text.
		return false
	case '.':
		cmd, arg, _ := strings.Cut(seq[1:], " ")
		if len(cmd) > 2 {
			// Commands are two letters; the argument may follow without a space (\.sp2\).
			cmd, arg = cmd[:2], cmd[2:]+arg
		}
		switch cmd {
		case "br", "ce":
			b.WriteByte('\n')
			return true
		case "sp":
			n := 1
			if a := strings.TrimSpace(arg); a != "" {
				v, err := strconv.Atoi(strings.TrimPrefix(a, "+"))
				if err != nil || v < 0 {
					return false
				}
				n = min(v, 100) // bounded: a note cannot ask for a megabyte of newlines
			}
			b.WriteString(strings.Repeat("\n", n))
			return true
		case "fi", "nf", "in", "ti", "sk":
			return true
		}
	}
	return false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// escape is the inverse of unescape for text written into a message: delimiters become their
// escape sequences and line ends become hex escapes, since CR would end the segment.
func escape(s string, d *Delimiters) string {
	need := false
	for i := 0; i < len(s); i++ {
		if d.special(s[i]) {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		var seq string
		switch {
		case c == d.Field:
			seq = "F"
		case c == d.Component:
			seq = "S"
		case c == d.Subcomponent:
			seq = "T"
		case c == d.Repetition:
			seq = "R"
		case c == d.Escape:
			seq = "E"
		case d.Truncation != 0 && c == d.Truncation:
			seq = "P"
		case c == '\r':
			seq = "X0D"
		case c == '\n':
			seq = "X0A"
		default:
			b.WriteByte(c)
			continue
		}
		b.WriteByte(d.Escape)
		b.WriteString(seq)
		b.WriteByte(d.Escape)
	}
	return b.String()
}
