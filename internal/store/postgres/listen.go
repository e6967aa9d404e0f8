package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which every revocation is
// announced when its transaction commits.
const NotifyChannel = "rotor_revocations"

// Listen holds a dedicated connection on NotifyChannel and calls onChange
// after every notification, and after every (re)connection, since
// notifications sent while it was away are lost. It reconnects with backoff
// and returns when ctx ends. onErr, if not nil, hears connection failures.
func (s *Store) Listen(ctx context.Context, onChange func(), onErr func(error)) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		connected, err := s.listenOnce(ctx, onChange)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = minBackoff
		}
		if onErr != nil && err != nil {
			onErr(wrap(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce listens until the connection fails; connected reports whether
// it got as far as LISTEN.
func (s *Store) listenOnce(ctx context.Context, onChange func()) (connected bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, err
	}
	onChange() // catch up on whatever happened while we were not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		onChange()
	}
}
