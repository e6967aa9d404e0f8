package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

var db *pgtest.Database

func TestMain(m *testing.M) { pgtest.Main(m, &db) }

// open returns a migrated store on the package's database.
func open(t testing.TB) *postgres.Store {
	t.Helper()
	pgtest.Require(t, db)
	s, err := postgres.Open(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background(), "up", nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	s := open(t)
	storetest.Run(t, func(*testing.T) tokens.Store { return s })
}

// TestKilledBetweenStatements kills the rotation's backend after the locking
// read and before the writes, as a crashed process would leave it: the
// transaction must roll back whole, and the client's retry must rotate
// normally without a false reuse detection.
func TestKilledBetweenStatements(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	f := storetest.NewFixture(t, s)
	u := f.MustUser()
	t0 := f.MustLogin(u)
	before := f.Session(t0.SessionID)
	killer, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	sel := storetest.Selector(t, t0.RefreshToken)
	_, err = s.Refresh(ctx, sel, func(st tokens.RefreshState) (tokens.RefreshOutcome, error) {
		// Every other backend of this database dies, ours among them.
		if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Errorf("terminate: %v", err)
		}
		now := f.Clock.Now()
		succ := storetest.FakeSelector(st.Token.Selector, 0xEE)
		return tokens.RefreshOutcome{Kind: tokens.OutcomeRotate, Now: now,
			Successor: tokens.RefreshRecord{Selector: succ, SessionID: st.Session.ID, VerifierHash: st.Token.VerifierHash,
				ParentSelector: st.Token.Selector, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			Event: tokens.AuditEvent{At: now, Kind: tokens.EventRefresh}}, nil
	})
	if !errors.Is(err, tokens.ErrUnavailable) {
		t.Fatalf("Refresh on a killed connection: %v, want unavailable", err)
	}
	after := f.Session(t0.SessionID)
	if !bytes.Equal(after.Chain.ActiveSelector, before.Chain.ActiveSelector) || after.Chain.PrevSelector != nil {
		t.Fatal("a rotation killed mid-way left a changed chain")
	}
	var tokensInSession int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE session_id = $1`, t0.SessionID).Scan(&tokensInSession); err != nil {
		t.Fatal(err)
	}
	if tokensInSession != 1 {
		t.Fatalf("%d tokens in the session after a killed rotation, want 1", tokensInSession)
	}
	t1 := f.MustRefresh(t0.RefreshToken)
	f.MustAuthenticate(t1.AccessToken)
}

// TestSchemaForbidsTwoChildren checks the database itself refuses a second
// successor of one parent: successors are derived from their parent, so the
// primary key makes a branch impossible.
func TestSchemaForbidsTwoChildren(t *testing.T) {
	s := open(t)
	f := storetest.NewFixture(t, s)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	_, err := s.Pool().Exec(context.Background(), `
		INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
		VALUES ($1, $2, 'x', $3, now(), now())`,
		storetest.Selector(t, t1.RefreshToken), t0.SessionID, storetest.Selector(t, t0.RefreshToken))
	if err == nil {
		t.Fatal("a second child with the derived selector was accepted")
	}
}

// TestRevocationCursorSurvivesOutOfOrderCommits: an entry whose transaction
// took its ID first and committed last is still read by the next call with
// the cursor of a call made in between (an ID cursor would skip it).
func TestRevocationCursorSurvivesOutOfOrderCommits(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	slow, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx) //nolint:errcheck // committed below
	late := uuid.New()
	if _, err := slow.Exec(ctx, `INSERT INTO revocations (kind, subject, until, created_at) VALUES ('token', $1, $2, $3)`,
		late, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	early := uuid.New()
	if _, err := s.DenyToken(ctx, early, now.Add(time.Hour), tokens.AuditEvent{At: now, Kind: tokens.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	first, cursor, err := s.Revocations(ctx, tokens.SyncCursor{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !hasSubject(first, early) || hasSubject(first, late) {
		t.Fatal("the first read should see the committed entry only")
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	second, _, err := s.Revocations(ctx, cursor, now)
	if err != nil {
		t.Fatal(err)
	}
	if !hasSubject(second, late) {
		t.Fatal("an entry that committed after the read, with a lower ID, was skipped by the cursor")
	}
}

func hasSubject(rs []tokens.Revocation, id uuid.UUID) bool {
	for _, r := range rs {
		if r.Subject == id {
			return true
		}
	}
	return false
}

// TestRevocationSyncReadsABacklogOnce: a transaction that stays open (here
// one that already took an xid, as a long report or a stuck session does)
// holds the snapshot's xmin back; the instance sync still reads each entry
// once, not the whole backlog on every call, and still gets the open
// transaction's entry when it commits.
func TestRevocationSyncReadsABacklogOnce(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	pin, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Rollback(ctx) //nolint:errcheck // committed below
	late := uuid.New()
	if _, err := pin.Exec(ctx, `INSERT INTO revocations (kind, subject, until, created_at) VALUES ('token', $1, $2, $3)`,
		late, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	_, cursor, err := s.Revocations(ctx, tokens.SyncCursor{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := s.DenyToken(ctx, uuid.New(), now.Add(time.Hour), tokens.AuditEvent{At: now, Kind: tokens.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	first, cursor, err := s.Revocations(ctx, cursor, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 50 || hasSubject(first, late) {
		t.Fatalf("first read: %d entries (late one listed: %v), want the 50 new ones", len(first), hasSubject(first, late))
	}
	again, cursor, err := s.Revocations(ctx, cursor, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Fatalf("a read with nothing new listed %d entries again", len(again))
	}
	if err := pin.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	last, _, err := s.Revocations(ctx, cursor, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 1 || !hasSubject(last, late) {
		t.Fatalf("after the open transaction committed: %d entries, want exactly its one", len(last))
	}
}
