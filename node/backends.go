package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/iomt/iomt"
	"github.com/iomt/iomt/bus/memory"
	"github.com/iomt/iomt/bus/nats"
	"github.com/iomt/iomt/store/embedded"
	"github.com/iomt/iomt/store/postgres"
)

// openStore opens the store the configuration names: PostgreSQL when a URL is given, else the
// embedded store in the data directory. Errors come back as a nil interface, never a typed nil
// that closeAll would call.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (iomt.Store, error) {
	if cfg.Postgres != "" {
		s, err := postgres.Open(ctx, cfg.Postgres, postgres.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := embedded.Open(filepath.Join(cfg.DataDir, "store"), embedded.Options{Logger: log, NoSync: cfg.NoSync})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openBus opens the bus the configuration names: NATS JetStream when a URL is given, else the
// in-process bus.
func openBus(ctx context.Context, cfg Config, log *slog.Logger) (iomt.Bus, error) {
	if c := cfg.NATS; c.URL != "" {
		b, err := nats.Open(ctx, nats.Options{
			URL: c.URL, CredsFile: c.CredsFile, TLSCAFile: c.TLSCA, TLSCertFile: c.TLSCert, TLSKeyFile: c.TLSKey,
			Partitions: c.Partitions, Replicas: c.Replicas, LeaseTTL: c.LeaseTTL, Member: cfg.NodeID, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return memory.New(memory.Options{Partitions: cfg.NATS.Partitions}), nil
}

// OpenStore opens the store a node with cfg would use (the PostgreSQL URL, else the embedded
// store in the data directory), for commands that work on it offline: `iomt user`, `iomt
// audit`. The embedded store is locked by a running node.
func OpenStore(ctx context.Context, cfg Config) (iomt.Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil && cfg.Postgres == "" {
		return nil, fmt.Errorf("open the store in %s (is a node running on it? stop it, or use the API): %w", cfg.DataDir, err)
	}
	return st, err
}
