package embedded

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWALSync measures one group commit's write of 16 KiB and its sync on this disk:
// appending to a file with fsync and with fdatasync (the size changes, so the file system
// journals metadata on every sync), against overwriting a preallocated, zero-filled segment
// with fdatasync (data only), which is what the WAL does.
func BenchmarkWALSync(b *testing.B) {
	buf := make([]byte, 16<<10)
	for _, mode := range []string{"append-fsync", "append", "preallocated"} {
		b.Run(mode, func(b *testing.B) {
			name := filepath.Join(b.TempDir(), "seg")
			if mode == "preallocated" {
				if err := preallocate(name, int64(b.N+1)*int64(len(buf))); err != nil {
					b.Fatal(err)
				}
			}
			f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				sync := fdatasync
				if mode == "append-fsync" {
					sync = (*os.File).Sync
				}
				if err := sync(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
