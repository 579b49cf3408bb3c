package mllp_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
	"github.com/iomt/iomt/wire/hl7v2/mllp"
)

// Over a real TCP connection: a sender writes two messages in one write, the receiver reads
// the frames, decodes, and answers each with its ACK, which the sender reads back.
func TestTCPExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		r := mllp.NewReader(c, 0)
		cat := codes.New()
		for {
			raw, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
			m, err := hl7v2.Parse(raw)
			if err == nil {
				_, err = hl7v2.DecodeORU(m, cat)
			}
			if err := mllp.Write(c, hl7v2.Ack(m, err, hl7v2.AckOptions{Application: "iomt"}).Encode()); err != nil {
				done <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	good := "MSH|^~\\&|Mon|ICU|||20240102030405+0000||ORU^R01|M1|P|2.6\rPID|||P1^^^H^PI\rOBR|1|||||||20240102030405+0000\r" +
		"OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r"
	bad := strings.Replace(good, "|M1|", "|M2|", 1)
	bad = strings.Replace(bad, "|NM|", "||", 1)
	if _, err := c.Write([]byte("\x0b" + good + "\x1c\r\x0b" + bad + "\x1c\r")); err != nil {
		t.Fatal(err)
	}
	r := mllp.NewReader(c, 0)
	for _, want := range []string{"MSA|AA|M1", "MSA|AE|M2\rERR||OBX^1^2^1|101^Required field missing^HL70357|E"} {
		ack, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ack), want) || !strings.HasPrefix(string(ack), "MSH|^~\\&|iomt||Mon|ICU|") {
			t.Errorf("ACK %q, want %q", ack, want)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
