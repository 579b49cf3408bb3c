// Package mllp frames HL7 v2 messages for TCP with the Minimal Lower Layer Protocol (HL7 v2
// Implementation Guide, appendix C): <VT> message <FS><CR>, where VT is 0x0B and FS 0x1C.
//
// The Reader is strict about what lies between frames, because a listener that silently
// skips bytes can hide a sender that is not speaking MLLP at all, but it can resynchronise:
// after a garbage or oversize error the next ReadMessage skips to the next frame, so one bad
// frame costs one message, not the connection.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The framing bytes.
const (
	StartBlock  = 0x0B // VT
	EndBlock    = 0x1C // FS
	CarriageRet = 0x0D // CR
)

// DefaultMaxSize bounds a message when NewReader is given 0: a PCD-01 message with a second
// of waveform is tens of kilobytes, so 1 MiB is generous without letting a peer exhaust memory.
const DefaultMaxSize = 1 << 20

// ErrTooLarge is returned for a frame longer than the reader's limit.
var ErrTooLarge = errors.New("mllp: message exceeds the size limit")

// ErrGarbage is returned when bytes other than a start block arrive between frames.
var ErrGarbage = errors.New("mllp: data outside a frame")

// FrameError says what went wrong where; it wraps ErrTooLarge, ErrGarbage or a framing fault.
type FrameError struct {
	Offset int64 // byte offset in the stream where the fault was seen
	Reason string
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("mllp: byte %d: %s", e.Offset, e.Reason)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Reader reads framed messages from a stream.
type Reader struct {
	r      *bufio.Reader
	max    int
	off    int64
	resync bool // after an error, skip to the next start block

	// carry is the start of a frame whose start block arrived inside the previous frame.
	carry   []byte
	carryAt int64
}

// NewReader reads frames from r, refusing messages longer than maxSize bytes (0: DefaultMaxSize).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Reader{r: bufio.NewReaderSize(r, 4096), max: maxSize}
}

// ReadMessage returns the next message without its framing; the slice is the caller's.
// It returns io.EOF at a clean end of stream (between frames) and io.ErrUnexpectedEOF, wrapped,
// when the stream ends inside a frame. CR and LF between frames are tolerated, since some
// senders end a frame with CRLF; any other byte is ErrGarbage.
func (r *Reader) ReadMessage() ([]byte, error) {
	var msg []byte
	var start int64 // offset just after this frame's start block
	if r.carry != nil {
		// The previous frame was cut short by this frame's start block.
		msg, r.carry = r.carry, nil
		start = r.carryAt
	} else if err := r.findStart(); err != nil {
		return nil, err
	} else {
		start = r.off
	}
	for {
		chunk, err := r.r.ReadSlice(EndBlock)
		at := r.off
		r.off += int64(len(chunk))
		if i := bytes.LastIndexByte(chunk, StartBlock); i >= 0 {
			// A sender that lost a frame's end: refuse that frame, keep the new one.
			r.carry = append(make([]byte, 0, len(chunk)-i), chunk[i+1:]...)
			if err == nil {
				r.carry = r.carry[:len(r.carry)-1]
				_ = r.r.UnreadByte() // cannot fail right after ReadSlice
				r.off--
			}
			r.carryAt = at + int64(i) + 1
			return nil, &FrameError{Offset: at + int64(bytes.IndexByte(chunk, StartBlock)), Reason: fmt.Sprintf("start block inside the frame that began at byte %d (its end block is missing)", start-1), Err: ErrGarbage}
		}
		n := len(msg) + len(chunk)
		if err == nil {
			n-- // the end block
		}
		if n > r.max {
			r.resync = true
			return nil, &FrameError{Offset: start - 1, Reason: fmt.Sprintf("message longer than %d bytes", r.max), Err: ErrTooLarge}
		}
		switch {
		case err == nil:
			msg = append(msg, chunk[:len(chunk)-1]...)
			c, err := r.r.ReadByte()
			if err != nil {
				return nil, &FrameError{Offset: r.off, Reason: "stream ended after the end block, before its CR", Err: io.ErrUnexpectedEOF}
			}
			r.off++
			if c != CarriageRet {
				r.resync = true
				return nil, &FrameError{Offset: r.off - 1, Reason: fmt.Sprintf("end block followed by 0x%02X, not CR", c), Err: ErrGarbage}
			}
			if msg == nil {
				msg = []byte{}
			}
			return msg, nil
		case errors.Is(err, bufio.ErrBufferFull):
			msg = append(msg, chunk...)
		case errors.Is(err, io.EOF):
			return nil, &FrameError{Offset: r.off, Reason: fmt.Sprintf("stream ended inside the frame that began at byte %d", start-1), Err: io.ErrUnexpectedEOF}
		default:
			return nil, fmt.Errorf("mllp: reading: %w", err)
		}
	}
}

// findStart consumes bytes up to and including the next start block.
func (r *Reader) findStart() error {
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("mllp: reading: %w", err)
		}
		r.off++
		switch {
		case c == StartBlock:
			r.resync = false
			return nil
		case r.resync, c == '\r', c == '\n':
			continue
		}
		r.resync = true
		return &FrameError{Offset: r.off - 1, Reason: fmt.Sprintf("byte 0x%02X between frames where a start block (0x0B) was expected", c), Err: ErrGarbage}
	}
}

// Write frames msg and writes it in one call, so that concurrent writers on a connection
// that serialise their calls never interleave a frame. It refuses a message that contains a
// framing byte, which would end the frame early on the other side.
func Write(w io.Writer, msg []byte) error {
	if i := bytes.IndexAny(msg, "\x0b\x1c"); i >= 0 {
		return fmt.Errorf("mllp: message byte %d is 0x%02X, a framing byte", i, msg[i])
	}
	buf := make([]byte, 0, len(msg)+3)
	buf = append(buf, StartBlock)
	buf = append(buf, msg...)
	buf = append(buf, EndBlock, CarriageRet)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("mllp: writing: %w", err)
	}
	return nil
}
