package postgres

import (
	"context"

	"github.com/iomt/iomt"
)

// Audit appends of TestConformanceTwoNodes go to one node or the other by actor, so the
// concurrent-append test has two nodes appending to one chain at once; reads go to the other
// node.
func (n twoNodes) AppendAudit(ctx context.Context, events []iomt.AuditEvent) ([]iomt.AuditEvent, error) {
	if len(events) > 0 && iomt.Partition(events[0].Actor, 2) == 1 {
		return n.r.AppendAudit(ctx, events)
	}
	return n.Store.AppendAudit(ctx, events)
}

func (n twoNodes) AuditEvents(ctx context.Context, f iomt.AuditFilter) ([]iomt.AuditEvent, error) {
	return n.r.AuditEvents(ctx, f)
}

func (n twoNodes) AuditCheckpoints(ctx context.Context) ([]iomt.AuditCheckpoint, error) {
	return n.r.AuditCheckpoints(ctx)
}
