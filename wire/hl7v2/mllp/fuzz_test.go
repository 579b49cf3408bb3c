package mllp_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/iomt/iomt/wire/hl7v2/mllp"
)

// FuzzReader checks that the reader never crashes, never returns more than its limit or a
// message with a framing byte, always ends (every call consumes input or ends the stream),
// and that frames it reads are the ones Write produced.
func FuzzReader(f *testing.F) {
	f.Add([]byte(frame("MSH|^~\\&|a\r")+frame("b")), 64)
	f.Add([]byte("x\x0ba\x1c\rb\x0bc\x1cX\x0b\x1c\r\n"), 4)
	f.Add([]byte("\x0b\x0b\x0b\x1c\x1c\r"), 1)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			limit = 1 << 16
		}
		r := mllp.NewReader(bytes.NewReader(data), limit)
		for i := 0; i <= len(data)+1; i++ {
			m, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				var fe *mllp.FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T %v is not a *FrameError", err, err)
				}
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				continue
			}
			if len(m) > limit || bytes.ContainsAny(m, "\x0b\x1c") {
				t.Fatalf("message %q (limit %d)", m, limit)
			}
			var b bytes.Buffer
			if err := mllp.Write(&b, m); err != nil {
				t.Fatal(err)
			}
			back, err := mllp.NewReader(&b, limit).ReadMessage()
			if err != nil || !bytes.Equal(back, m) {
				t.Fatalf("round trip: %q %v", back, err)
			}
		}
		t.Fatalf("%d calls did not reach the end of %d bytes", len(data)+2, len(data))
	})
}
