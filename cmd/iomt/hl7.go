package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/iomt/iomt/codes"
	"github.com/iomt/iomt/wire/hl7v2"
	"github.com/iomt/iomt/wire/hl7v2/mllp"
)

const hl7Usage = `Usage:
  iomt hl7 parse FILE

parse reads an HL7 v2 ORU^R01 (IHE PCD-01, Continua WAN) from FILE, bare or in MLLP frames,
with segments ending in CR, LF or CRLF ("-" reads standard input), and prints its observations
as JSON: each OBX with its MDC code, containment, values, unit, status, time in UTC, device,
and the codes catalog's mapping or the reason it has none. A file of several MLLP frames
prints a JSON array, one report per message.

A message the gateway would refuse exits 1 with the reason and the ACK it would answer with
on standard error.
`

// hl7Command runs `iomt hl7 ...`. Exit codes: 0 ok, 1 refused, 2 usage.
func hl7Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, hl7Usage)
		return 2
	}
	switch args[0] {
	case "parse":
		if len(args) != 2 {
			fmt.Fprintf(stderr, "iomt hl7 parse: want exactly one FILE\n\n%s", hl7Usage)
			return 2
		}
		return hl7Parse(ctx, args[1], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, hl7Usage)
		return 0
	}
	fmt.Fprintf(stderr, "iomt hl7: unknown subcommand %q\n\n%s", args[0], hl7Usage)
	return 2
}

// hl7MaxFile bounds what parse reads: MLLP's own per-message limit, times a few messages.
const hl7MaxFile = 16 * mllp.DefaultMaxSize

func hl7Parse(ctx context.Context, name string, stdout, stderr io.Writer) int {
	data, err := hl7ReadFile(name)
	if err != nil {
		fmt.Fprintf(stderr, "iomt hl7 parse: %v\n", err)
		return 1
	}
	msgs, err := hl7Split(data)
	if err != nil {
		fmt.Fprintf(stderr, "iomt hl7 parse: %s: %v\n", name, err)
		return 1
	}
	cat := codes.New()
	reports := make([]*hl7v2.Report, 0, len(msgs))
	for i, raw := range msgs {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "iomt hl7 parse: %v\n", err)
			return 1
		}
		m, err := hl7v2.Parse(raw)
		var rep *hl7v2.Report
		if err == nil {
			rep, err = hl7v2.DecodeORU(m, cat)
		}
		if err != nil {
			where := name
			if len(msgs) > 1 {
				where = fmt.Sprintf("%s: message %d", name, i+1)
			}
			fmt.Fprintf(stderr, "iomt hl7 parse: %s: refused: %v\n", where, err)
			ack := hl7v2.Ack(m, err, hl7v2.AckOptions{Application: "iomt"}).Encode()
			fmt.Fprintf(stderr, "ACK that would be sent:\n%s", bytes.ReplaceAll(ack, []byte("\r"), []byte("\n")))
			return 1
		}
		reports = append(reports, rep)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	var out any = reports
	if len(reports) == 1 {
		out = reports[0]
	}
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "iomt hl7 parse: writing JSON: %v\n", err)
		return 1
	}
	return 0
}

func hl7ReadFile(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, hl7MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > hl7MaxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, hl7MaxFile)
	}
	return data, nil
}

// hl7Split returns the messages of a file: the MLLP frames when it starts with a start block
// (after blank lines), else the whole file as one bare message.
func hl7Split(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimLeft(data, "\r\n \t")
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty")
	}
	if trimmed[0] != mllp.StartBlock {
		return [][]byte{data}, nil
	}
	r := mllp.NewReader(bytes.NewReader(trimmed), 0)
	var msgs [][]byte
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("MLLP frame %d: %w", len(msgs)+1, err)
		}
		msgs = append(msgs, m)
	}
}
