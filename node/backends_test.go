package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/iomt/iomt/node"
)

// The node tests run twice when PostgreSQL is configured: on embedded defaults, then on the
// scale-out backends (PostgreSQL store, NATS JetStream bus), so both behave the same.
var scaleOut bool

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && os.Getenv("IOMT_TEST_POSTGRES") != "" {
		fmt.Println("=== node tests again on PostgreSQL and NATS JetStream")
		scaleOut = true
		code = m.Run()
	}
	os.Exit(code)
}

// backends fills cfg's scale-out settings in scale-out mode: a fresh database and a fresh
// JetStream server for this test.
func backends(t *testing.T, cfg *node.Config) {
	t.Helper()
	if !scaleOut {
		return
	}
	cfg.Postgres = pgDatabase(t)
	cfg.NATS = node.NATSConfig{URL: natsJetStream(t), LeaseTTL: 2 * time.Second}
}

// pgDatabase creates an empty database for one test and returns its URL.
func pgDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("IOMT_TEST_POSTGRES")
	if base == "" {
		t.Skip("IOMT_TEST_POSTGRES is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable): skipping a PostgreSQL test")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to IOMT_TEST_POSTGRES: %v", err)
	}
	defer admin.Close(ctx)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "iomt_node_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("IOMT_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// natsJetStream runs a real nats-server with JetStream inside the test process.
func natsJetStream(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}
