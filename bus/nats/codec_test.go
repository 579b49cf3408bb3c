package nats

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iomt/iomt"
)

// vitalsBatch is a 5-reading vital-signs batch, as a bedside monitor sends every few seconds.
func vitalsBatch(patient string, i int) iomt.Batch {
	at := t0.Add(time.Duration(i) * 5 * time.Second)
	dev := "monitor-" + patient
	obs := func(code string, v float64, unit string) iomt.Observation {
		return iomt.Observation{Patient: patient, Device: dev, Code: code, Time: at, Value: v, Unit: unit}
	}
	return iomt.Batch{
		Tenant: "hospital-1", Device: dev, Patient: patient, Received: at.Add(120 * time.Millisecond),
		Observations: []iomt.Observation{
			obs("8867-4", 72, "/min"), obs("9279-1", 16, "/min"), obs("2708-6", 97, "%"),
			obs("8310-5", 36.8, "Cel"), obs("8480-6", 121, "mm[Hg]"),
		},
	}
}

// ecgBatch is one second of a 250 Hz ECG lead.
func ecgBatch(patient string, i int) iomt.Batch {
	start := t0.Add(time.Duration(i) * time.Second)
	s := make([]int32, 250)
	for j := range s {
		// A plausible lead in µV steps: baseline wander plus a QRS spike.
		s[j] = int32(40*math.Sin(float64(j)/40) + 900*math.Exp(-math.Pow(float64(j-120)/4, 2)))
	}
	return iomt.Batch{
		Tenant: "hospital-1", Device: "ecg-" + patient, Patient: patient, Received: start.Add(time.Second + 80*time.Millisecond),
		Waveforms: []iomt.Waveform{{
			Patient: patient, Device: "ecg-" + patient, Code: "131329", Start: start,
			Period: 4 * time.Millisecond, Scale: 0.001, Unit: "mV", Samples: s,
		}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	odd := iomt.Batch{
		Tenant: "t", Device: "d", Patient: "p",
		Observations: []iomt.Observation{
			{Patient: "other", Device: "", Code: "x", Time: time.Unix(-5, 123456789).UTC(), Value: math.Inf(-1)},
			{Patient: "p", Device: "d2", Code: "y", Time: time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC), Value: math.Copysign(0, -1)},
		},
		Waveforms: []iomt.Waveform{
			{Patient: "p", Code: "w", Samples: []int32{math.MaxInt32, math.MinInt32, 0, -1, 1}},
			{Patient: "p", Code: "empty"},
		},
	}
	for _, b := range []iomt.Batch{vitalsBatch("p1", 3), ecgBatch("p2", 7), odd, {}} {
		got, err := decodeBatch(encodeBatch(nil, &b))
		if err != nil {
			t.Fatal(err)
		}
		// The codec gives nil for empty sample slices; compare what matters.
		for i := range b.Waveforms {
			if len(b.Waveforms[i].Samples) == 0 {
				b.Waveforms[i].Samples = nil
			}
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, b)
		}
	}
}

func TestCodecRefusesCorruptInput(t *testing.T) {
	good := encodeBatch(nil, ptr(ecgBatch("p", 1)))
	for name, data := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"huge count": {codecVersion, 0, 0, 0, 0, 0,
			0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := decodeBatch(data); err == nil {
			t.Errorf("%s: decoded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMsgID(t *testing.T) {
	a := vitalsBatch("p1", 1)
	replay := a
	replay.Received = a.Received.Add(time.Minute)
	if MsgID(&a) != MsgID(&replay) {
		t.Error("a replay (same readings, received later) has another id")
	}
	next := vitalsBatch("p1", 2)
	other := vitalsBatch("p2", 1)
	w1, w2 := ecgBatch("p1", 1), ecgBatch("p1", 2)
	ids := map[string]bool{}
	for _, b := range []iomt.Batch{a, next, other, w1, w2} {
		ids[MsgID(&b)] = true
	}
	if len(ids) != 5 {
		t.Errorf("%d distinct ids for 5 distinct batches", len(ids))
	}
	e1, e2 := iomt.Batch{Device: "d", Received: t0}, iomt.Batch{Device: "d", Received: t0.Add(time.Second)}
	if MsgID(&e1) == MsgID(&e2) {
		t.Error("batches without readings received at different times share an id")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(nil, ptr(vitalsBatch("p", 1))))
	f.Add(encodeBatch(nil, ptr(ecgBatch("p", 1))))
	f.Add([]byte{codecVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBatch(data)
		if err != nil {
			return
		}
		// What decodes encodes back to something that decodes to the same batch.
		again, err := decodeBatch(encodeBatch(nil, &b))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(jsonOf(t, b), jsonOf(t, again)) {
			t.Fatalf("not stable:\n%+v\n%+v", b, again)
		}
	})
}

func jsonOf(t *testing.T, b iomt.Batch) string {
	// NaN values make DeepEqual fail on equal batches; compare bit patterns through JSON of
	// the float bits instead.
	type obs struct {
		iomt.Observation
		Bits uint64
	}
	var os []obs
	for _, o := range b.Observations {
		v := o
		v.Value = 0
		os = append(os, obs{v, math.Float64bits(o.Value)})
	}
	ws := append([]iomt.Waveform(nil), b.Waveforms...)
	for i := range ws {
		ws[i].Scale = float64(math.Float64bits(ws[i].Scale))
	}
	out, err := json.Marshal([]any{b.Tenant, b.Device, b.Patient, b.Received, os, ws})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// BenchmarkCodec compares the payload of the bus with JSON: size per batch and speed.
func BenchmarkCodec(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch iomt.Batch
	}{{"vitals5", vitalsBatch("patient-000123", 1)}, {"ecg250", ecgBatch("patient-000123", 1)}} {
		b.Run(c.name+"/binary", func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf = encodeBatch(buf[:0], &c.batch)
				if _, err := decodeBatch(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes/batch")
		})
		b.Run(c.name+"/json", func(b *testing.B) {
			var n int
			for b.Loop() {
				buf, err := json.Marshal(&c.batch)
				if err != nil {
					b.Fatal(err)
				}
				var out iomt.Batch
				if err := json.Unmarshal(buf, &out); err != nil {
					b.Fatal(err)
				}
				n = len(buf)
			}
			b.ReportMetric(float64(n), "bytes/batch")
		})
	}
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://alice:s3cret@h1:4222, tls://tok3n@h2:4222,nats://h3")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") || !strings.Contains(got, "h3") {
		t.Errorf("redactURLs: %s", got)
	}
}
