package hl7v2

import (
	"bytes"
	"fmt"
	"strings"
)

// Delimiters are the encoding characters a message declares in MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte // MSH-1, usually |
	Component    byte // usually ^
	Repetition   byte // usually ~
	Escape       byte // usually \
	Subcomponent byte // usually &
	Truncation   byte // v2.7's fifth encoding character, usually #; 0 when not declared
}

// defaultDelimiters are the ones HL7 recommends; Ack uses them when the message it answers
// could not be read.
var defaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

func (d *Delimiters) truncation() byte {
	if d.Truncation != 0 {
		return d.Truncation
	}
	return '#'
}

// special reports whether c must be escaped in a value.
func (d *Delimiters) special(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Repetition || c == d.Escape ||
		c == d.Subcomponent || (d.Truncation != 0 && c == d.Truncation) || c == '\r' || c == '\n'
}

// encodingCharacters is MSH-2 as these delimiters write it.
func (d *Delimiters) encodingCharacters() string {
	s := string([]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent})
	if d.Truncation != 0 {
		s += string(d.Truncation)
	}
	return s
}

// readDelimiters takes the delimiters from the start of an MSH segment and checks that they
// can be told apart from each other and from the data.
func readDelimiters(msh string) (Delimiters, error) {
	var d Delimiters
	if len(msh) < 4 {
		return d, &Error{Code: RequiredFieldMissing, Segment: "MSH", SegmentSeq: 1, Field: 1, Line: 1, Reason: "MSH-1 (field separator) is missing"}
	}
	d.Field = msh[3]
	enc := msh[4:]
	if i := strings.IndexByte(enc, d.Field); i >= 0 {
		enc = enc[:i]
	}
	if len(enc) != 4 && len(enc) != 5 {
		return d, &Error{Code: DataTypeError, Segment: "MSH", SegmentSeq: 1, Field: 2, Line: 1,
			Reason: fmt.Sprintf("MSH-2 (encoding characters) %q must hold 4 characters (5 with the truncation character)", enc)}
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	all := []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		all = append(all, d.Truncation)
	}
	for i, c := range all {
		if c == '\r' || c == '\n' || c == ' ' || isAlnum(c) || c >= 0x80 || c < 0x20 {
			return d, &Error{Code: DataTypeError, Segment: "MSH", SegmentSeq: 1, Field: min(i+1, 2), Line: 1,
				Reason: fmt.Sprintf("encoding character %q cannot be a delimiter", c)}
		}
		if bytes.IndexByte(all[:i], c) >= 0 {
			return d, &Error{Code: DataTypeError, Segment: "MSH", SegmentSeq: 1, Field: 2, Line: 1,
				Reason: fmt.Sprintf("encoding character %q is declared twice", c)}
		}
	}
	return d, nil
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// Message is a parsed HL7 v2 message.
type Message struct {
	Delimiters Delimiters
	Segments   []Segment
}

// Segment is one segment. Fields[i] is field i+1 as HL7 numbers them; for MSH, Fields[0] is
// MSH-1 (the field separator) and Fields[1] MSH-2 (the encoding characters), both verbatim.
type Segment struct {
	Name   string
	Fields []Field
}

// Field holds a field's repetitions; an empty field has none.
type Field []Repetition

// Repetition holds the components of one occurrence of a field.
type Repetition []Component

// Component holds subcomponents, with escape sequences decoded.
type Component []string

// Null is how HL7 writes an explicit null ("delete the value"), as opposed to an empty field.
const Null = `""`

// Field returns field n (1-based), or nil when the segment does not have it (or is nil, so
// that m.Segment("NTE").Get(3, 1) is "" when there is no NTE).
func (s *Segment) Field(n int) Field {
	if s == nil || n < 1 || n > len(s.Fields) {
		return nil
	}
	return s.Fields[n-1]
}

// Get returns the first subcomponent of component comp (1-based) of the first repetition of
// field n: the usual way to read a single value.
func (s *Segment) Get(n, comp int) string { return s.Field(n).Comp(comp) }

// String returns the first component's first subcomponent of the first repetition.
func (f Field) String() string { return f.Comp(1) }

// Comp returns component n (1-based) of the first repetition.
func (f Field) Comp(n int) string {
	if len(f) == 0 {
		return ""
	}
	return f[0].Comp(n)
}

// Empty reports whether the field holds no value at all.
func (f Field) Empty() bool {
	for _, r := range f {
		for _, c := range r {
			for _, s := range c {
				if s != "" {
					return false
				}
			}
		}
	}
	return true
}

// Comp returns component n (1-based), first subcomponent.
func (r Repetition) Comp(n int) string {
	if n < 1 || n > len(r) || len(r[n-1]) == 0 {
		return ""
	}
	return r[n-1][0]
}

// Sub returns subcomponent n (1-based) of component comp.
func (r Repetition) Sub(comp, n int) string {
	if comp < 1 || comp > len(r) {
		return ""
	}
	c := r[comp-1]
	if n < 1 || n > len(c) {
		return ""
	}
	return c[n-1]
}

// MaxSegments bounds how many segments Parse accepts; a device message has tens.
const MaxSegments = 10000

// Parse reads one message. Segments may be separated by CR, LF or CRLF and blank lines are
// skipped, so a message saved to a file reads as it does off the wire. MLLP framing must be
// removed first (see package mllp).
func Parse(data []byte) (*Message, error) {
	// One string for the whole message: leaves without escapes are substrings of it, so
	// parsing allocates the tree, not the text.
	text := string(data)
	start := 0
	for start < len(text) && (text[start] == '\r' || text[start] == '\n') {
		start++
	}
	text = text[start:]
	if !strings.HasPrefix(text, "MSH") {
		return nil, &Error{Code: SegmentSequenceError, Segment: "MSH", SegmentSeq: 1, Line: 1, Reason: "the message does not start with an MSH segment"}
	}
	d, err := readDelimiters(firstLine(text))
	if err != nil {
		return nil, err
	}
	m := &Message{Delimiters: d, Segments: make([]Segment, 0, strings.Count(text, "\r")+strings.Count(text, "\n")+1)}
	seen := map[string]int{}
	for line := range splitSegments(text) {
		if len(m.Segments) == MaxSegments {
			return nil, &Error{Code: SegmentSequenceError, Reason: fmt.Sprintf("more than %d segments", MaxSegments)}
		}
		n := len(m.Segments) + 1
		seg, err := parseSegment(line, &d, n == 1)
		if err != nil {
			err.Line = n
			if err.Segment != "" {
				seen[err.Segment]++
				err.SegmentSeq = seen[err.Segment]
			}
			return nil, err
		}
		seen[seg.Name]++
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// splitSegments yields the non-empty lines of s, whatever the line end.
func splitSegments(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			i := strings.IndexAny(s, "\r\n")
			line := s
			if i >= 0 {
				line, s = s[:i], s[i+1:]
			} else {
				s = ""
			}
			if line == "" {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

func parseSegment(line string, d *Delimiters, first bool) (Segment, *Error) {
	if len(line) < 3 || !isAlnum(line[0]) || !isAlnum(line[1]) || !isAlnum(line[2]) ||
		(len(line) > 3 && line[3] != d.Field) {
		name := line
		if len(name) > 8 {
			name = name[:8] + "..."
		}
		return Segment{}, &Error{Code: SegmentSequenceError, Reason: fmt.Sprintf("%q is not a segment: a segment starts with a three-character id and the field separator", name)}
	}
	seg := Segment{Name: line[:3]}
	if seg.Name == "MSH" {
		if !first {
			return Segment{}, &Error{Code: SegmentSequenceError, Segment: "MSH", Reason: "a second MSH segment: one message per parse"}
		}
		// MSH-1 and MSH-2 are the delimiters themselves and are not split.
		rest := line[4:]
		enc := d.encodingCharacters()
		rest = rest[len(enc):]
		seg.Fields = append(seg.Fields, Field{{{string(d.Field)}}}, Field{{{enc}}})
		if rest == "" {
			return seg, nil
		}
		line = rest // starts with the field separator before MSH-3
	} else {
		line = line[3:]
	}
	if line == "" {
		return seg, nil
	}
	line = line[1:]
	count := strings.Count(line, string(d.Field)) + 1
	if seg.Fields == nil {
		seg.Fields = make([]Field, 0, count)
	}
	for f := range strings.SplitSeq(line, string(d.Field)) {
		seg.Fields = append(seg.Fields, parseField(f, d))
	}
	return seg, nil
}

func parseField(s string, d *Delimiters) Field {
	if s == "" {
		return nil
	}
	f := make(Field, 0, strings.Count(s, string(d.Repetition))+1)
	for r := range strings.SplitSeq(s, string(d.Repetition)) {
		rep := make(Repetition, 0, strings.Count(r, string(d.Component))+1)
		for c := range strings.SplitSeq(r, string(d.Component)) {
			if strings.IndexByte(c, d.Subcomponent) < 0 {
				rep = append(rep, Component{unescape(c, d)})
				continue
			}
			comp := make(Component, 0, strings.Count(c, string(d.Subcomponent))+1)
			for sc := range strings.SplitSeq(c, string(d.Subcomponent)) {
				comp = append(comp, unescape(sc, d))
			}
			rep = append(rep, comp)
		}
		f = append(f, rep)
	}
	return f
}

// Segment returns the first segment with this id, or nil.
func (m *Message) Segment(name string) *Segment {
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			return &m.Segments[i]
		}
	}
	return nil
}

// Header returns the MSH segment. Parse guarantees there is one.
func (m *Message) Header() *Segment {
	if len(m.Segments) == 0 {
		return &Segment{Name: "MSH"}
	}
	return &m.Segments[0]
}

// ControlID is MSH-10, the id an ACK echoes in MSA-2.
func (m *Message) ControlID() string { return m.Header().Get(10, 1) }

// Type returns MSH-9's message code and trigger event, e.g. "ORU", "R01".
func (m *Message) Type() (code, trigger string) {
	f := m.Header().Field(9)
	return f.Comp(1), f.Comp(2)
}

// Encode writes the message with CR after each segment, escaping what needs escaping.
func (m *Message) Encode() []byte {
	d := &m.Delimiters
	var b bytes.Buffer
	for i := range m.Segments {
		s := &m.Segments[i]
		b.WriteString(s.Name)
		for j, f := range s.Fields {
			if s.Name == "MSH" && j < 2 {
				// MSH-1 is the separator itself and MSH-2 follows it directly.
				if j == 0 {
					b.WriteByte(d.Field)
				} else {
					b.WriteString(d.encodingCharacters())
				}
				continue
			}
			b.WriteByte(d.Field)
			writeField(&b, f, d)
		}
		b.WriteByte('\r')
	}
	return b.Bytes()
}

func writeField(b *bytes.Buffer, f Field, d *Delimiters) {
	for i, r := range f {
		if i > 0 {
			b.WriteByte(d.Repetition)
		}
		for j, c := range r {
			if j > 0 {
				b.WriteByte(d.Component)
			}
			for k, s := range c {
				if k > 0 {
					b.WriteByte(d.Subcomponent)
				}
				b.WriteString(escape(s, d))
			}
		}
	}
}

// text builds a field of one value, for messages this package writes.
func text(s string) Field {
	if s == "" {
		return nil
	}
	return Field{{{s}}}
}

// comps builds a field of one repetition with these components, trailing empty ones dropped.
func comps(cs ...string) Field {
	for len(cs) > 0 && cs[len(cs)-1] == "" {
		cs = cs[:len(cs)-1]
	}
	r := make(Repetition, len(cs))
	for i, c := range cs {
		r[i] = Component{c}
	}
	return Field{r}
}
