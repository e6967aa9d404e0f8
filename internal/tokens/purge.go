package tokens

import (
	"context"
	"time"
)

// DefaultAuditRetention is how long audit events are kept unless
// configured: 90 days.
const DefaultAuditRetention = 90 * 24 * time.Hour

// Purge deletes expired rows in batches until none are left or ctx ends,
// and drops expired denylist entries. It reports the rows deleted.
func (s *Service) Purge(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		now := s.now()
		n, err := s.store.Purge(ctx, now, now.Add(-s.cfg.AuditRetention), batch)
		total += n
		if err != nil || n == 0 {
			s.deny.Purge(s.now())
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(10 * time.Millisecond): // let other work in between batches
		}
	}
}
