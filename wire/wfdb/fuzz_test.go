package wfdb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n# 69 M\n"))
	f.Add([]byte("r 1 500/1000(0) 10\nr.dat 16x2:3+24 1000(-5)/uV 16 0 7 0 0 I\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, s := range h.Signals {
			if !(s.Gain > 0) {
				t.Fatalf("accepted a non-positive gain: %+v", s)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7}, 212, 2)
	f.Add([]byte{1, 2, 3, 4, 5}, 16, 1)
	f.Fuzz(func(t *testing.T, b []byte, format, nsig int) {
		out, err := Decode(b, format, nsig)
		if err != nil {
			return
		}
		for _, s := range out {
			for _, v := range s {
				if format == 212 && (v < -2048 || v > 2047) {
					t.Fatalf("212 sample %d out of 12-bit range", v)
				}
			}
		}
	})
}

func FuzzParseAnnotations(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(dataDir, "wfdb-checkpkg", "100s.atr")); err == nil {
		f.Add(b)
	}
	f.Add([]byte{100, 4, 5, 248, 0x28, 0x41, 0x46, 0x49, 0x42, 0, 0, 0})
	f.Add([]byte{0, 236, 1, 0, 0x70, 0x11, 5, 4, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		anns, err := ParseAnnotations(b)
		if err != nil {
			return
		}
		if len(anns) > len(b)/2 {
			t.Fatalf("%d annotations from %d bytes", len(anns), len(b))
		}
	})
}
