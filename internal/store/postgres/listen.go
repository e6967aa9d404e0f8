package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which every revocation is
// announced when its transaction commits.
const NotifyChannel = "rotor_revocations"

// Listener timings. A connection that freezes without closing (a dead peer,
// a silent partition) never reports an error by itself, so the listener
// waits for a notification at most ListenHeartbeat, then pings with
// ListenPingTimeout; a ping that fails or times out counts as a lost
// connection. Each connection attempt (connect and LISTEN) has
// ListenConnectTimeout.
const (
	ListenHeartbeat      = time.Second
	ListenPingTimeout    = 500 * time.Millisecond
	ListenConnectTimeout = 2 * time.Second
)

// ListenerAppName suffixes the pool's application_name ("rotor" unless the
// URL sets one) on the listener's connection, so operators can tell it
// from the pool's in pg_stat_activity: "rotor-listener" by default.
const ListenerAppName = "-listener"

// Listen holds a dedicated connection on NotifyChannel and calls onChange
// after every notification, and after every (re)connection, since
// notifications sent while it was away are lost. It checks the connection
// with a heartbeat, reconnects with backoff and returns when ctx ends.
// onErr, if not nil, hears connection failures (a failed heartbeat
// included). onChange runs on the listener's goroutine: it should only
// signal, not do slow work, or the heartbeat waits for it.
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

// listenConfig is the pool's connection configuration with the listener's
// application_name.
func (s *Store) listenConfig() *pgx.ConnConfig {
	cfg := s.pool.Config().ConnConfig.Copy()
	name := cfg.RuntimeParams["application_name"]
	if name == "" {
		name = "rotor"
	}
	cfg.RuntimeParams["application_name"] = name + ListenerAppName
	return cfg
}

// listenOnce listens until the connection fails or stops answering;
// connected reports whether it got as far as LISTEN.
func (s *Store) listenOnce(ctx context.Context, onChange func()) (connected bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, ListenConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.listenConfig())
	if err != nil {
		return false, fmt.Errorf("listener connect: %w", err)
	}
	defer func() {
		// Terminate is a few bytes into the socket buffer, but bound it
		// anyway: the peer may be frozen.
		closeCtx, cancel := context.WithTimeout(context.Background(), ListenPingTimeout)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+NotifyChannel); err != nil {
		return false, fmt.Errorf("listener LISTEN: %w", err)
	}
	cancel()
	onChange() // catch up on whatever happened while we were not listening
	for {
		wctx, cancel := context.WithTimeout(ctx, ListenHeartbeat)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			onChange()
			continue
		}
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		// pgx keeps the connection usable after a wait that timed out;
		// anything else has broken it.
		if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
			return true, err
		}
		pctx, cancel := context.WithTimeout(ctx, ListenPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			return true, fmt.Errorf("listener heartbeat: no answer within %v: %w", ListenPingTimeout, err)
		}
	}
}
