package identity

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// File is a Resolver backed by a YAML mapping file (see Parse). Reload re-reads it; a file
// that fails validation leaves the previous mapping in force, so a typo made while the
// gateway runs does not unmap every device.
type File struct {
	path string
	log  *slog.Logger
	cur  atomic.Pointer[Table]
}

// Open reads and validates the mapping file at path. log may be nil.
func Open(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &File{path: path, log: log}
	t, err := f.read()
	if err != nil {
		return nil, err
	}
	f.cur.Store(t)
	return f, nil
}

func (f *File) read() (*Table, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("identity: reading mapping: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return t, nil
}

// Reload re-reads the file and swaps the mapping in; on error the old mapping stays.
func (f *File) Reload() error {
	t, err := f.read()
	if err != nil {
		f.log.Error("identity mapping not reloaded; keeping the previous one", "path", f.path, "err", err)
		return err
	}
	f.cur.Store(t)
	f.log.Info("identity mapping reloaded", "path", f.path, "devices", t.Len())
	return nil
}

// Table returns the mapping in force.
func (f *File) Table() *Table { return f.cur.Load() }

// ResolveBLE implements Resolver.
func (f *File) ResolveBLE(ctx context.Context, addr string) (Binding, error) {
	return f.cur.Load().ResolveBLE(ctx, addr)
}

// ResolveHL7 implements Resolver.
func (f *File) ResolveHL7(ctx context.Context, s HL7Sender) (Binding, error) {
	return f.cur.Load().ResolveHL7(ctx, s)
}

// ResolveLocal implements LocalResolver.
func (f *File) ResolveLocal(ctx context.Context, name string) (Binding, error) {
	return f.cur.Load().ResolveLocal(ctx, name)
}
