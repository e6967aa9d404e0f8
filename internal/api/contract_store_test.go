package api_test

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

type ctFaultyStore struct {
	tokens.Store
	mu    sync.Mutex
	fault error
}

func (f *ctFaultyStore) setFault(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = err
}

func (f *ctFaultyStore) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fault
}

func (f *ctFaultyStore) CreateUser(ctx context.Context, u tokens.User) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.CreateUser(ctx, u)
}

func (f *ctFaultyStore) UserByEmail(ctx context.Context, email string) (tokens.User, error) {
	if err := f.err(); err != nil {
		return tokens.User{}, err
	}
	return f.Store.UserByEmail(ctx, email)
}

func (f *ctFaultyStore) UserByID(ctx context.Context, id uuid.UUID) (tokens.User, error) {
	if err := f.err(); err != nil {
		return tokens.User{}, err
	}
	return f.Store.UserByID(ctx, id)
}

func (f *ctFaultyStore) UpdateUser(ctx context.Context, u tokens.UserUpdate) (tokens.User, []tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return tokens.User{}, nil, err
	}
	return f.Store.UpdateUser(ctx, u)
}

func (f *ctFaultyStore) CreateSession(ctx context.Context, s tokens.NewSession) (tokens.User, []tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return tokens.User{}, nil, err
	}
	return f.Store.CreateSession(ctx, s)
}

func (f *ctFaultyStore) Refresh(ctx context.Context, ref tokens.TokenRef, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) ([]tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.Refresh(ctx, ref, decide)
}

func (f *ctFaultyStore) RotateActive(ctx context.Context, r tokens.ActiveRotation) (tokens.RefreshState, bool, error) {
	if err := f.err(); err != nil {
		return tokens.RefreshState{}, false, err
	}
	fr, ok := f.Store.(tokens.FastRotator)
	if !ok {
		return tokens.RefreshState{}, false, nil
	}
	return fr.RotateActive(ctx, r)
}

func (f *ctFaultyStore) RevokeSessions(ctx context.Context, r tokens.SessionRevocation) ([]tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.RevokeSessions(ctx, r)
}

func (f *ctFaultyStore) DenyToken(ctx context.Context, jti uuid.UUID, until time.Time, ev tokens.AuditEvent) (tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return tokens.Revocation{}, err
	}
	return f.Store.DenyToken(ctx, jti, until, ev)
}

func (f *ctFaultyStore) Session(ctx context.Context, id uuid.UUID) (tokens.Session, error) {
	if err := f.err(); err != nil {
		return tokens.Session{}, err
	}
	return f.Store.Session(ctx, id)
}

func (f *ctFaultyStore) ActiveSessions(ctx context.Context, userID uuid.UUID, now time.Time, after *tokens.SessionCursor, limit int) ([]tokens.Session, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.ActiveSessions(ctx, userID, now, after, limit)
}

func (f *ctFaultyStore) RevocationFeed(ctx context.Context, c tokens.FeedCursor, now time.Time, limit int) ([]tokens.Revocation, tokens.FeedCursor, bool, error) {
	if err := f.err(); err != nil {
		return nil, c, false, err
	}
	return f.Store.RevocationFeed(ctx, c, now, limit)
}

func (f *ctFaultyStore) Revocations(ctx context.Context, since tokens.SyncCursor, now time.Time) ([]tokens.Revocation, tokens.SyncCursor, error) {
	if err := f.err(); err != nil {
		return nil, since, err
	}
	return f.Store.Revocations(ctx, since, now)
}

func (f *ctFaultyStore) AddAudit(ctx context.Context, ev tokens.AuditEvent) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.AddAudit(ctx, ev)
}

func (f *ctFaultyStore) Audit(ctx context.Context, userID uuid.UUID, before int64, limit int) ([]tokens.AuditEvent, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.Audit(ctx, userID, before, limit)
}

func (f *ctFaultyStore) Purge(ctx context.Context, now, auditBefore time.Time, batch int) (int, error) {
	if err := f.err(); err != nil {
		return 0, err
	}
	return f.Store.Purge(ctx, now, auditBefore, batch)
}

func (f *ctFaultyStore) Ping(ctx context.Context) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

func (f *ctFaultyStore) CreateClient(ctx context.Context, c tokens.Client) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.CreateClient(ctx, c)
}

func (f *ctFaultyStore) Client(ctx context.Context, id string) (tokens.Client, error) {
	if err := f.err(); err != nil {
		return tokens.Client{}, err
	}
	return f.Store.Client(ctx, id)
}

func (f *ctFaultyStore) Clients(ctx context.Context) ([]tokens.Client, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.Clients(ctx)
}

func (f *ctFaultyStore) UpdateClient(ctx context.Context, u tokens.ClientUpdate) (tokens.Client, []tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return tokens.Client{}, nil, err
	}
	return f.Store.UpdateClient(ctx, u)
}

func (f *ctFaultyStore) DeleteClient(ctx context.Context, id string, r tokens.ClientRevocation) ([]tokens.Revocation, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.DeleteClient(ctx, id, r)
}
