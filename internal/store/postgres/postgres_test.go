package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
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
	_, err = s.Refresh(ctx, tokens.TokenRef{SessionID: t0.SessionID}, func(st tokens.RefreshState) (tokens.RefreshOutcome, error) {
		// Every other backend of this database dies, ours among them.
		if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Errorf("terminate: %v", err)
		}
		now := f.Clock.Now()
		next := st.Session.Chain
		next.Generation++
		next.VerifierHash = make([]byte, 32)
		next.RotatedAt = now
		return tokens.RefreshOutcome{Kind: tokens.OutcomeRotate, Now: now, Chain: next, Client: storetest.TestClient,
			Events: []tokens.AuditEvent{{At: now, Kind: tokens.EventRefresh}}}, nil
	})
	if !errors.Is(err, tokens.ErrUnavailable) {
		t.Fatalf("Refresh on a killed connection: %v, want unavailable", err)
	}
	after := f.Session(t0.SessionID)
	if after.Chain.Generation != before.Chain.Generation || !bytes.Equal(after.Chain.VerifierHash, before.Chain.VerifierHash) || after.RefreshCount != 0 {
		t.Fatal("a rotation killed mid-way left a changed chain")
	}
	t1 := f.MustRefresh(t0.RefreshToken)
	f.MustAuthenticate(t1.AccessToken)
}

// TestRotationIsOneHOTUpdate: an ordinary rotation (the fast path, and a
// grace replay beside it) updates the session row in place (HOT: no
// index entry is written) and inserts no row anywhere; a rotation from
// another address inserts exactly its session_moved event.
func TestRotationIsOneHOTUpdate(t *testing.T) {
	pgtest.Require(t, db)
	ctx := context.Background()
	sep := "?"
	if strings.Contains(db.URL, "?") {
		sep = "&"
	}
	s, err := postgres.Open(ctx, db.URL+sep+"pool_max_conns=1") // one backend: its statistics are ours
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, "up", nil); err != nil {
		t.Fatal(err)
	}
	f := storetest.NewFixture(t, s)
	rt := f.MustLogin(f.MustUser()).RefreshToken
	type counts struct{ upd, hot, ins, auditIns, tokenIns int64 }
	read := func() counts {
		t.Helper()
		// Flush this backend's pending statistics, then read them (one
		// statement each: a read is cached for its transaction).
		if _, err := s.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := s.Pool().QueryRow(ctx, `SELECT
			(SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'),
			(SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'),
			(SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'sessions'),
			(SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit_events'),
			(SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'refresh_tokens')`).
			Scan(&c.upd, &c.hot, &c.ins, &c.auditIns, &c.tokenIns); err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := read()
	const n = 20
	for range n {
		prev := rt
		rt = f.MustRefresh(rt).RefreshToken
		if again := f.MustRefresh(prev).RefreshToken; again != rt { // a grace replay writes nothing
			t.Fatal("the grace replay answered another token")
		}
	}
	after := read()
	if d := after.upd - before.upd; d != n {
		t.Errorf("%d session updates for %d rotations", d, n)
	}
	if d := after.hot - before.hot; d != n {
		t.Errorf("%d of %d rotations were HOT updates", d, n)
	}
	if after.ins != before.ins || after.auditIns != before.auditIns || after.tokenIns != before.tokenIns {
		t.Errorf("ordinary rotations inserted rows: sessions %d, audit %d, refresh_tokens %d",
			after.ins-before.ins, after.auditIns-before.auditIns, after.tokenIns-before.tokenIns)
	}
	if _, err := f.Svc.Refresh(ctx, rt, tokens.ClientInfo{IP: "203.0.113.9", UserAgent: storetest.TestClient.UserAgent}); err != nil {
		t.Fatal(err)
	}
	if moved := read(); moved.auditIns-after.auditIns != 1 || moved.hot-after.hot != 1 {
		t.Errorf("a rotation from another address: %d audit rows, %d HOT updates; want 1 and 1",
			moved.auditIns-after.auditIns, moved.hot-after.hot)
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
