package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/iomt/iomt"
)

// Export writes the records f selects to w as JSON lines (one iomt.AuditEvent per line, with
// seq, prev and hash, so that a copy can be checked against the chain), in Seq order, and
// returns how many it wrote. f.Limit bounds the whole export (0: everything); it reads the
// store a page at a time.
func Export(ctx context.Context, store iomt.AuditStore, f iomt.AuditFilter, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	limit, n := f.Limit, 0
	for {
		f.Limit = pageSize
		if limit > 0 {
			f.Limit = min(pageSize, limit-n)
		}
		page, err := store.AuditEvents(ctx, f)
		if err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		for i := range page {
			if err := enc.Encode(&page[i]); err != nil {
				return n, fmt.Errorf("audit: export: %w", err)
			}
			n++
		}
		if len(page) < f.Limit || (limit > 0 && n >= limit) {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	return n, nil
}
