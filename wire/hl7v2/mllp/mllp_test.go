package mllp_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/iomt/iomt/wire/hl7v2/mllp"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

// readAll reads messages until EOF or an error, returning both.
func readAll(r *mllp.Reader) ([]string, error) {
	var out []string
	for {
		m, err := r.ReadMessage()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(m))
	}
}

func TestReadFrames(t *testing.T) {
	msgs := []string{"MSH|^~\\&|a\rPID|1\r", "MSH|^~\\&|b\r", ""}
	var stream string
	for _, m := range msgs {
		stream += frame(m)
	}
	for name, r := range map[string]io.Reader{
		// Both frames arrive in one read.
		"one read": strings.NewReader(stream),
		// Every byte in its own read: frames split across reads, FS and CR apart.
		"split reads": iotest.OneByteReader(strings.NewReader(stream)),
		"half reads":  iotest.HalfReader(strings.NewReader(stream)),
		// CR LF after a frame, as some senders write.
		"CRLF after frames": strings.NewReader(strings.ReplaceAll(stream, "\x1c\r", "\x1c\r\n")),
	} {
		got, err := readAll(mllp.NewReader(r, 0))
		if err != nil || strings.Join(got, "|") != strings.Join(msgs, "|") || len(got) != len(msgs) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

func TestLargeMessage(t *testing.T) {
	// Larger than the internal buffer, exactly at the limit.
	msg := strings.Repeat("x", 10000)
	got, err := readAll(mllp.NewReader(strings.NewReader(frame(msg)+frame("y")), len(msg)))
	if err != nil || len(got) != 2 || got[0] != msg || got[1] != "y" {
		t.Fatalf("%d messages, %v", len(got), err)
	}
}

func TestOversized(t *testing.T) {
	big := strings.Repeat("x", 5000)
	r := mllp.NewReader(strings.NewReader(frame(big)+frame("ok")), 4999)
	_, err := r.ReadMessage()
	var fe *mllp.FrameError
	if !errors.Is(err, mllp.ErrTooLarge) || !errors.As(err, &fe) || fe.Offset != 0 || !strings.Contains(err.Error(), "longer than 4999 bytes") {
		t.Fatalf("got %v", err)
	}
	// The oversized frame is skipped; the next one reads.
	m, err := r.ReadMessage()
	if err != nil || string(m) != "ok" {
		t.Fatalf("after an oversized frame: %q %v", m, err)
	}
	// Small limit, content in the same chunk as the end block.
	r = mllp.NewReader(strings.NewReader(frame("abcdef")), 5)
	if _, err := r.ReadMessage(); !errors.Is(err, mllp.ErrTooLarge) {
		t.Fatalf("6 bytes with a limit of 5: %v", err)
	}
}

func TestGarbage(t *testing.T) {
	for _, c := range []struct {
		name, stream string
		reason       string
		offset       int64
		after        string // the message read after the error, if any
	}{
		{"before the first frame", "HELLO" + frame("a"), "byte 0x48 between frames", 0, "a"},
		{"between frames", frame("a") + "xx" + frame("b"), "byte 0x78 between frames", 4, "b"},
		{"FS without CR", "\x0ba\x1cX" + frame("b"), "end block followed by 0x58, not CR", 3, "b"},
		{"missing end block", "\x0ba\rb" + frame("c"), "start block inside the frame that began at byte 0", 4, "c"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mllp.NewReader(strings.NewReader(c.stream), 0)
			var err error
			for err == nil {
				_, err = r.ReadMessage()
			}
			var fe *mllp.FrameError
			if !errors.Is(err, mllp.ErrGarbage) || !errors.As(err, &fe) || fe.Offset != c.offset || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("got %v (offset %d), want %q at %d", err, fe.Offset, c.reason, c.offset)
			}
			m, err := r.ReadMessage()
			if err != nil || string(m) != c.after {
				t.Fatalf("after the error: %q %v, want %q", m, err, c.after)
			}
			if _, err := r.ReadMessage(); err != io.EOF {
				t.Fatalf("at the end: %v", err)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for _, s := range []string{"\x0bMSH|", "\x0bMSH|\x1c"} {
		_, err := mllp.NewReader(strings.NewReader(s), 0).ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := mllp.NewReader(strings.NewReader("\r\n"), 0).ReadMessage(); err != io.EOF {
		t.Errorf("blank stream: %v", err)
	}
	r := mllp.NewReader(iotest.ErrReader(errors.New("conn reset")), 0)
	if _, err := r.ReadMessage(); err == nil || !strings.Contains(err.Error(), "conn reset") {
		t.Errorf("read error: %v", err)
	}
}

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	if err := mllp.Write(&b, []byte("MSH|^~\\&|\r")); err != nil {
		t.Fatal(err)
	}
	if b.String() != frame("MSH|^~\\&|\r") {
		t.Errorf("wrote %q", b.String())
	}
	if err := mllp.Write(&b, []byte("a\x1cb")); err == nil || !strings.Contains(err.Error(), "byte 1 is 0x1C") {
		t.Errorf("framing byte inside: %v", err)
	}
	// Written frames read back.
	got, err := readAll(mllp.NewReader(&b, 0))
	if err != nil || len(got) != 1 || got[0] != "MSH|^~\\&|\r" {
		t.Errorf("read back %q %v", got, err)
	}
}
