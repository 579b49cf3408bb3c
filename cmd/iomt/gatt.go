package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/iomt/iomt/wire/gatt"
)

const gattUsage = `Usage: iomt gatt decode UUID HEX

Decodes one Bluetooth GATT health-characteristic payload, as a BLE sniffer or nRF Connect shows
it, and prints the decoded value, with the readings iomt would store (catalog code, value in the
canonical unit), as indented JSON.

UUID is 2A37, 0x2A37 or 00002A37-0000-1000-8000-00805F9B34FB. HEX is the payload in the order
the bytes came over the air, with or without spaces, colons or dashes between bytes, or as
several arguments ("1E 55 32 00 21 00", 1E5532002100, 1E:55:32:00:21:00).

Characteristics: 2A37 Heart Rate, 2A35 Blood Pressure, 2A1C Temperature, 2A18 Glucose,
2AA7 CGM, 2A5E PLX Spot-Check, 2A5F PLX Continuous, 2A60 PLX Features, 2A9D Weight.

Exit status: 0 decoded, 1 payload refused (the reason on stderr), 2 usage.
`

// gattOutput is what `iomt gatt decode` prints.
type gattOutput struct {
	UUID           string         `json:"uuid"`
	Characteristic string         `json:"characteristic"`
	Value          any            `json:"value"`
	Readings       []gatt.Reading `json:"readings,omitempty"`
}

// gattCommand runs `iomt gatt ...`. Exit codes: 0 ok, 1 refused payload, 2 usage.
func gattCommand(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, gattUsage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, gattUsage)
		return 0
	case "decode":
	default:
		fmt.Fprintf(stderr, "iomt gatt: unknown subcommand %q\n\n%s", args[0], gattUsage)
		return 2
	}
	args = args[1:]
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, gattUsage)
		return 0
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "iomt gatt decode: want UUID and HEX\n\n%s", gattUsage)
		return 2
	}
	uuid, err := gatt.ParseUUID(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "iomt gatt decode: %v\n", err)
		return 2
	}
	if gatt.Name(uuid) == "" {
		fmt.Fprintf(stderr, "iomt gatt decode: no decoder for characteristic 0x%04X\n\n%s", uuid, gattUsage)
		return 2
	}
	payload, err := gattParseHex(strings.Join(args[1:], " "))
	if err != nil {
		fmt.Fprintf(stderr, "iomt gatt decode: %v\n", err)
		return 2
	}
	v, err := gatt.Decode(uuid, payload)
	if err != nil {
		fmt.Fprintf(stderr, "iomt gatt decode: %v\n", err)
		return 1
	}
	out := gattOutput{UUID: fmt.Sprintf("0x%04X", uuid), Characteristic: gatt.Name(uuid), Value: v}
	if m, ok := v.(gatt.Measurement); ok {
		out.Readings = m.Readings()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "iomt gatt decode: writing output: %v\n", err)
		return 1
	}
	return 0
}

// gattParseHex reads hex bytes separated by nothing, spaces, colons or dashes, with an
// optional 0x in front, as sniffers and BLE apps print them.
func gattParseHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', ':', '-':
			return -1
		}
		return r
	}, s)
	if clean == "" {
		return nil, errors.New("HEX: empty payload")
	}
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("HEX %q: %w", s, err)
	}
	return b, nil
}
