package edge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iomt/iomt/gateway"
	"github.com/iomt/iomt/gateway/edge"
)

// FuzzAccept hands arbitrary packs (what adapters build from network input) to Alarms with
// the uplink long down: the next Sink always gets the pack and its answer is returned as is.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{
		`[{"bn":"oxi-1:","bt":1.7e9,"n":"59408-5","u":"%","v":70}]`,
		`[{"bn":"oxi-1:","bt":1.7e9,"n":"spo2","u":"/","v":0.7},{"n":"hr","v":200,"t":1}]`,
		`[{"n":"8480-6","v":80,"t":-1}]`,
		`[{"n":"hr","vs":"x"}]`, `[]`, `{}`, `x`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	w := &world{now: time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)}
	w.setDown(true)
	w.advance(time.Hour)
	failure := errors.New("spool: closed")
	f.Fuzz(func(t *testing.T, pack []byte, fail bool) {
		sink := &memSink{}
		if fail {
			sink.err = failure
		}
		a, err := edge.New(sink, edge.Config{UplinkDown: w.UplinkDown, Now: w.Now, Threshold: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Accept(context.Background(), "dev", pack, gateway.Spot)
		if sink.packs != 1 || (fail && !errors.Is(err, failure)) || (!fail && err != nil) {
			t.Fatalf("next sink got %d packs; Accept = %v", sink.packs, err)
		}
	})
}
