package wfdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dataDir is the shared reference data, relative to this package's directory.
const dataDir = "../../../shared/data"

func needData(t testing.TB, sub string) string {
	t.Helper()
	d := filepath.Join(dataDir, sub)
	if _, err := os.Stat(d); err != nil {
		t.Skipf("reference data %s absent (%v): skipping; see ../shared/data/README.md", d, err)
	}
	return d
}

func TestHeader100s(t *testing.T) {
	d := needData(t, "wfdb-checkpkg")
	f, err := os.Open(filepath.Join(d, "100s.hea"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := ParseHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.Record != "100s" || h.Frequency != 360 || h.NumSamples != 21600 || len(h.Signals) != 2 {
		t.Fatalf("record line: %+v", h)
	}
	s := h.Signals[0]
	want := Signal{File: "100s.dat", Format: 212, SamplesPerFrame: 1, Gain: 200, Baseline: 1024, Units: "mV",
		ADCRes: 11, ADCZero: 1024, InitValue: 995, Checksum: 21537, Description: "MLII"}
	if s != want {
		t.Fatalf("signal 0:\n got %+v\nwant %+v", s, want)
	}
	if h.Signals[1].Description != "V5" || h.Signals[1].InitValue != 1011 {
		t.Fatalf("signal 1: %+v", h.Signals[1])
	}
	if len(h.Comments) != 3 || !strings.Contains(h.Comments[1], "Aldomet") {
		t.Fatalf("comments: %q", h.Comments)
	}
}

func TestHeaderFields(t *testing.T) {
	h, err := ParseHeader(strings.NewReader("r1 3 500/1000(0) 10 12:00:00 01/01/2000\n" +
		"r1.dat 16+24 1000(-5)/uV 16 0 7 0 0 lead I\n" +
		"r1.dat 16 0 16 3\n" +
		"r1.dat 16 400/mmHg\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Frequency != 500 || h.NumSamples != 10 || h.BaseTime != "12:00:00" || h.BaseDate != "01/01/2000" {
		t.Fatalf("record: %+v", h)
	}
	a, b, c := h.Signals[0], h.Signals[1], h.Signals[2]
	if a.ByteOffset != 24 || a.Gain != 1000 || a.Baseline != -5 || a.Units != "uV" || a.InitValue != 7 || a.Description != "lead I" {
		t.Fatalf("signal 0: %+v", a)
	}
	if b.Gain != DefaultGain || b.Baseline != 3 || b.ADCZero != 3 {
		t.Fatalf("signal 1 (gain 0 means default, baseline defaults to ADC zero): %+v", b)
	}
	if c.Gain != 400 || c.Units != "mmHg" || c.Baseline != 0 {
		t.Fatalf("signal 2: %+v", c)
	}
	if got := a.Physical(995); got != 1 {
		t.Fatalf("physical(995) = %v, want 1", got)
	}
}

func TestHeaderRefusals(t *testing.T) {
	for _, tc := range []struct{ in, reason string }{
		{"", "no record line"},
		{"# only a comment\n", "no record line"},
		{"r x 360\n", "bad number of signals"},
		{"r 1 -3\n", "bad sampling frequency"},
		{"r 1 360 -1\n", "bad number of samples"},
		{"r 2 360\nr.dat 212\n", "declares 2 signals but describes 1"},
		{"r 1 360\nr.dat 212\nr.dat 212\n", "more signal lines"},
		{"r 1 360\nr.dat\n", "needs a file name and a format"},
		{"r 1 360\nr.dat abc\n", "bad format"},
		{"r 1 360\nr.dat 212 x\n", "bad gain"},
		{"r 1 360\nr.dat 212 200(z)\n", "bad baseline"},
		{"r 1 360\nr.dat 212 200 12 q\n", "bad integer field"},
		{"r/2 1 360\n", "multi-segment"},
	} {
		_, err := ParseHeader(strings.NewReader(tc.in))
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("ParseHeader(%q) = %v, want an ErrFormat saying %q", tc.in, err, tc.reason)
		}
	}
}

// TestRdsamp100s compares physical values with `rdsamp -r 100s -f 10 -t 11 -p -v`.
func TestRdsamp100s(t *testing.T) {
	d := needData(t, "wfdb-checkpkg")
	rec, err := ReadRecord(d, "100s")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Samples[0]) != 21600 || len(rec.Samples[1]) != 21600 {
		t.Fatalf("samples: %d, %d", len(rec.Samples[0]), len(rec.Samples[1]))
	}
	if rec.Samples[0][0] != 995 || rec.Samples[1][0] != 1011 {
		t.Fatalf("first samples %d %d disagree with the header's initial values", rec.Samples[0][0], rec.Samples[1][0])
	}
	f, err := os.Open(filepath.Join(d, "expected.rdsamp.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	sc.Scan() // two heading lines
	k := 3600
	p0, p1 := rec.Physical(0), rec.Physical(1)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		got := []string{fmt.Sprintf("%.3f", float64(k)/rec.Frequency), fmt.Sprintf("%.3f", p0[k]), fmt.Sprintf("%.3f", p1[k])}
		if strings.Join(got, " ") != strings.Join(fs, " ") {
			t.Fatalf("sample %d: got %v, want %v", k, got, fs)
		}
		k++
	}
	if k != 3960 {
		t.Fatalf("compared up to sample %d, want 3960", k)
	}
}

// TestRdann100s compares with `rdann -r 100s -a atr`.
func TestRdann100s(t *testing.T) {
	d := needData(t, "wfdb-checkpkg")
	anns, err := ReadAnnotations(d, "100s", "atr")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(d, "expected.rdann.out"))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, a := range anns {
		fmt.Fprintf(&got, "%s %d %s %d %d %d", msTime(a.Sample, 360), a.Sample, a.Code, a.Sub, a.Chan, a.Num)
		if a.Aux != "" {
			fmt.Fprintf(&got, " %s", a.Aux)
		}
		got.WriteByte('\n')
	}
	var norm bytes.Buffer
	for _, l := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		norm.WriteString(strings.Join(strings.Fields(l), " ") + "\n")
	}
	if got.String() != norm.String() {
		t.Fatalf("rdann mismatch:\n got:\n%s\nwant:\n%s", got.String(), norm.String())
	}
}

// msTime formats a sample number as rdann does for records under an hour: m:ss.mmm.
func msTime(s int64, fs float64) string {
	ms := int64(float64(s)*1000/fs + 0.5)
	return fmt.Sprintf("%d:%02d.%03d", ms/60000, ms/1000%60, ms%1000)
}

// TestBeatCountsMITDB checks every record's beat and annotation counts against ecg-oracles.
func TestBeatCountsMITDB(t *testing.T) {
	mit := needData(t, "mitdb")
	or := needData(t, "ecg-oracles")
	b, err := os.ReadFile(filepath.Join(or, "mitdb_beat_counts_from_atr.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	n, total := 0, 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 3 || strings.HasPrefix(l, "#") || f[0] == "record" {
			continue
		}
		beats, _ := strconv.Atoi(f[1])
		all, _ := strconv.Atoi(f[2])
		anns, err := ReadAnnotations(mit, f[0], "atr")
		if err != nil {
			t.Fatal(err)
		}
		gotBeats := 0
		for _, a := range anns {
			if a.Code.IsBeat() {
				gotBeats++
			}
		}
		if gotBeats != beats || len(anns) != all {
			t.Errorf("record %s: %d beats of %d annotations, want %d of %d", f[0], gotBeats, len(anns), beats, all)
		}
		rec, err := ReadRecord(mit, f[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Samples[0]) != 650000 {
			t.Errorf("record %s: %d samples", f[0], len(rec.Samples[0]))
		}
		for i, s := range rec.Signals {
			if rec.Samples[i][0] != int32(s.InitValue) {
				t.Errorf("record %s signal %d: first sample %d, header says %d", f[0], i, rec.Samples[i][0], s.InitValue)
			}
			if c := checksum(rec.Samples[i]); c != int16(s.Checksum) {
				t.Errorf("record %s signal %d: checksum %d, header says %d", f[0], i, c, s.Checksum)
			}
		}
		n++
		total += gotBeats
	}
	if n != 48 || total != 109494 {
		t.Fatalf("%d records, %d beats; want 48 and 109494", n, total)
	}
}

// checksum is WFDB's 16-bit sum of a signal's samples.
func checksum(s []int32) int16 {
	var c int16
	for _, v := range s {
		c += int16(v)
	}
	return c
}

func TestRhythmAux(t *testing.T) {
	mit := needData(t, "mitdb")
	anns, err := ReadAnnotations(mit, "201", "atr")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range anns {
		if a.Code == Rhythm {
			seen[a.Aux] = true
		}
	}
	if !seen["(AFIB"] || !seen["(N"] {
		t.Fatalf("rhythm labels of 201: %v", seen)
	}
}

func TestDecode(t *testing.T) {
	// 212: samples 1, -1 (two's complement 12 bit) then 2047, -2048, and a lone 5.
	b212 := []byte{0x01, 0xf0, 0xff, 0xff, 0x87, 0x00, 0x05, 0x00}
	got, err := Decode(b212, 212, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[[1 -1 2047 -2048 5]]" {
		t.Fatalf("212: %v", got)
	}
	b16 := []byte{0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f, 0x09}
	got, err = Decode(b16, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[[1 -32768] [-1 32767]]" {
		t.Fatalf("16: %v", got)
	}
	if _, err := Decode(b16, 80, 1); err == nil || !strings.Contains(err.Error(), "format 80 is not supported") {
		t.Fatalf("format 80: %v", err)
	}
	if _, err := Decode(b16, 16, 0); err == nil || !strings.Contains(err.Error(), "bad number of signals") {
		t.Fatalf("0 signals: %v", err)
	}
}

func TestReadRecordFormat16(t *testing.T) {
	dir := t.TempDir()
	hea := "r16 2 250 3\nr16.dat 16 100(10)/mV 16 0 -5 0 0 ECG\nr16.dat 16 50/mV 16 0 6 0 0 ECG2\n"
	dat := []byte{0xfb, 0xff, 6, 0, 110 % 256, 0, 56, 0, 10, 0, 0, 0, 9, 9}
	if err := os.WriteFile(filepath.Join(dir, "r16.hea"), []byte(hea), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r16.dat"), dat, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecord(dir, "r16")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rec.Samples) != "[[-5 110 10] [6 56 0]]" {
		t.Fatalf("samples %v", rec.Samples)
	}
	if p := rec.Physical(0); p[1] != 1 || p[0] != -0.15 {
		t.Fatalf("physical %v", p)
	}
	if p := rec.Physical(1); p[1] != 1.12 {
		t.Fatalf("physical %v", p)
	}
}

func TestAnnotationModifiers(t *testing.T) {
	w := func(a, v int) []byte { x := uint16(a<<10 | v); return []byte{byte(x), byte(x >> 8)} }
	var b []byte
	b = append(b, w(1, 100)...)           // N at 100
	b = append(b, w(codeChn, 1)...)       // chan 1 from here on
	b = append(b, w(codeNum, 1023)...)    // num -1 from here on
	b = append(b, w(codeSub, 3)...)       // this annotation only
	b = append(b, w(codeSkip, 0)...)      // skip 70000 samples
	b = append(b, 0x01, 0x00, 0x70, 0x11) // 0x00011170 = 70000 as a PDP-11 long
	b = append(b, w(28, 5)...)            // rhythm at 70105
	b = append(b, w(codeAux, 5)...)
	b = append(b, "(AFIB"...)
	b = append(b, 0)          // pad
	b = append(b, w(5, 7)...) // V at 70112
	b = append(b, 0, 0)
	anns, err := ParseAnnotations(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Annotation{
		{Sample: 100, Code: Normal, Sub: 3, Chan: 1, Num: -1},
		{Sample: 70105, Code: Rhythm, Chan: 1, Num: -1, Aux: "(AFIB"},
		{Sample: 70112, Code: PVC, Chan: 1, Num: -1},
	}
	if fmt.Sprint(anns) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", anns, want)
	}
	for _, tc := range []struct {
		in     []byte
		reason string
	}{
		{[]byte{1}, "ends inside a word"},
		{w(codeSub, 1), "SUB at byte 0 precedes any annotation"},
		{append(w(1, 1), w(codeSkip, 0)...), "SKIP at byte 2 is truncated"},
		{append(w(1, 1), w(codeAux, 9)...), "claims 9 bytes past the end"},
	} {
		_, err := ParseAnnotations(tc.in)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("ParseAnnotations(%x) = %v, want %q", tc.in, err, tc.reason)
		}
	}
	if Code(1).String() != "N" || Code(50).String() != "[50]" || !Pace.IsBeat() || Rhythm.IsBeat() || NAPC.IsBeat() {
		t.Fatal("code table")
	}
}
