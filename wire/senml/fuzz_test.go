package senml_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/iomt/iomt/wire/senml"
)

// fuzzSeeds returns the working group's examples when they are present, and a few packs of
// our own either way, so that the fuzz targets have seeds in a plain clone too.
func fuzzSeeds(tb testing.TB, pattern string) [][]byte {
	seeds := [][]byte{
		[]byte(rfcMultipleTypes),
		[]byte(`[{"bn":"d:","bver":10,"bs":1,"bv":2,"n":"a","u":"","v":1,"s":2,"t":-1,"ut":5},{"n":"b","vd":"AQI"},{"n":"c","vb":true},{"n":"d","vs":"\u00e9\n","x":[{"y":null}]}]`),
		[]byte(`[{"bn":"urn:dev:x:"},{"bn":"","bt":0,"n":"a","s":0}]`),
	}
	dir := filepath.Join("..", "..", "..", "shared", "data", "senml")
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			seeds = append(seeds, b)
		}
	}
	return seeds
}

func checkDecoded(t *testing.T, p senml.Pack, err error) {
	t.Helper()
	if err != nil {
		var e *senml.Error
		if !errors.As(err, &e) {
			t.Fatalf("refusal %T %v is not a *senml.Error", err, err)
		}
		return
	}
	if len(p) == 0 {
		t.Fatal("an empty pack was accepted")
	}
	checkRoundTrip(t, p)
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range fuzzSeeds(f, "ex*.json") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := senml.DecodeJSON(data)
		checkDecoded(t, p, err)
	})
}

func FuzzDecodeCBOR(f *testing.F) {
	for _, s := range fuzzSeeds(f, "ex*.gen.json") {
		// Our own CBOR encoding of each JSON seed, so the fuzzer starts from valid packs.
		if p, err := senml.DecodeJSON(s); err == nil {
			if b, err := senml.EncodeCBOR(p); err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range fuzzSeeds(f, "ex*.gen.cbor") {
		if s[0] != '[' {
			f.Add(s)
		}
	}
	// Text labels, indefinite lengths, a decimal fraction, an ignored extension.
	for _, h := range []string{
		"81 a3 61 6e 61 61 61 76 f9 3e 00 62 62 74 1a 65 53 f1 00",
		"9f bf 00 61 61 02 c4 82 21 19 30 39 ff bf 00 61 62 04 f5 ff ff",
		"81 a5 00 61 61 02 01 18 63 82 01 bf 61 78 80 ff 63 66 6f 6f c1 01 26 7f 61 61 ff",
	} {
		b := mustHex(f, h)
		if _, err := senml.DecodeCBOR(b); err != nil {
			f.Fatalf("seed %s: %v", h, err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := senml.DecodeCBOR(data)
		checkDecoded(t, p, err)
	})
}
