package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The suite runs against an embedded nats-server with JetStream in a temporary directory, and
// also against the server named by IOMT_TEST_NATS (a URL) when it is set. Every test uses its
// own stream, subjects and lease bucket, so runs against a shared server do not collide.
const envURL = "IOMT_TEST_NATS"

// env is one engine a test runs against.
type env struct {
	t     testing.TB
	url   string
	srv   *server.Server // nil for an external server
	dir   string
	port  int
	names Options // Stream, Subject, LeaseBucket for this test
	log   *slog.Logger
}

// engines runs f once per available engine.
func engines(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("embedded", func(t *testing.T) { f(t, embedded(t)) })
	t.Run("external", func(t *testing.T) {
		url := os.Getenv(envURL)
		if url == "" {
			t.Skipf("set %s to a NATS URL (for example nats://127.0.0.1:4222) to run this test against a running server", envURL)
		}
		f(t, external(t, url))
	})
}

func embedded(t testing.TB) *env {
	e := &env{t: t, dir: t.TempDir(), port: -1}
	e.start()
	t.Cleanup(func() {
		if e.srv != nil {
			e.srv.Shutdown()
			e.srv.WaitForShutdown()
		}
	})
	e.init()
	return e
}

func external(t testing.TB, url string) *env {
	e := &env{t: t, url: url}
	e.init()
	t.Cleanup(func() {
		// Remove what the test created on the shared server.
		nc, err := natsgo.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, e.names.Stream)
		_ = js.DeleteKeyValue(ctx, e.names.LeaseBucket)
	})
	return e
}

// start (re)starts the embedded server on the same port and store directory.
func (e *env) start() {
	e.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: e.port, JetStream: true, StoreDir: e.dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("embedded nats-server did not start")
	}
	e.srv = srv
	e.url = srv.ClientURL()
	e.port = srv.Addr().(*net.TCPAddr).Port
}

func (e *env) stop() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func (e *env) init() {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	e.names = Options{Stream: "T_" + id, Subject: "t" + id + ".obs", LeaseBucket: "T_" + id + "_leases"}
	level := slog.LevelInfo
	if _, bench := e.t.(*testing.B); bench {
		level = slog.LevelWarn
	}
	e.log = slog.New(slog.NewTextHandler(newTestWriter(e.t), &slog.HandlerOptions{Level: level}))
}

// open opens a bus on the test's stream, with a 1s lease TTL unless mod says otherwise.
func (e *env) open(mod func(*Options)) *Bus {
	e.t.Helper()
	o := e.names
	o.URL = e.url
	o.LeaseTTL = time.Second
	o.Logger = e.log
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := b.Close(); err != nil {
			e.t.Error(err)
		}
	})
	return b
}

// testWriter sends log lines to t.Log until the test ends (a goroutine logging after that
// would make the test panic).
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func newTestWriter(t testing.TB) io.Writer {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fmtOwned(bs ...*Bus) string {
	var s []string
	for _, b := range bs {
		for g, st := range b.Stats().Groups {
			if g != "" {
				s = append(s, fmt.Sprintf("%s/%s:%v", b.Member(), g, st.Owned))
			}
		}
	}
	return strings.Join(s, " ")
}
