package storetest

import (
	"testing"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Run runs the whole conformance suite against the stores newStore returns.
// newStore may return the same store every time; tests isolate themselves by
// using their own users and clients.
func Run(t *testing.T, newStore func(t *testing.T) tokens.Store) {
	tests := []namedTest{
		// users and logins
		{"users: email is unique case-insensitively", testUsers},
		{"login: every refusal is the same invalid_grant", testLoginRefusals},
		{"hashing: every password path shares the bounded hashing slots", testHashingBounded},
		// rotation (SPEC §2)
		{"rotation: a chain of rotations", testChain},
		{"rotation: reuse after the window revokes the session and its current token", testReuseAfterWindow},
		{"rotation: an older ancestor inside the window is reuse", testAncestorIsReuse},
		{"rotation: a retry inside the window gets the identical successor", testGraceReplay},
		{"rotation: strict mode without a window", testStrictMode},
		{"rotation: expired tokens and sessions are refused and change nothing", testExpiry},
		{"rotation: unknown and forged tokens change nothing", testForgedTokens},
		{"rotation: a failed transaction leaves the old state", testTransactionBoundary},
		{"rotation: an expired used token changes nothing", testExpiredUsedToken},
		{"rotation: a clock behind the rotation is never reuse", testGraceWithClockBehind},
		{"rotation: the one-statement fast path applies every rule", testRotateActiveRules},
		{"rotation: the fast path refuses what the locked path refuses", testFastPathRefusals},
		{"rotation: the fast path agrees with tokens.Decide on every kind of state", testFastPathAgreesWithDecide},
		{"rotation: fast path, locked path and grace replay agree on expiry and claims", testFastSlowConsistent},
		{"lifetimes: an access token never outlives its session", testAccessCappedAtSessionEnd},
		{"lifetimes: a grace retry of a token that expired after its rotation gets the successor", testGraceRetryAfterTokenExpiry},
		{"clock: a replay read by an instance whose clock is behind the rotation is not reuse", testNegativeElapsed},
		{"clock: a replay read by a clock far behind the rotation changes nothing", testSkewBeyondTolerance},
		{"reuse: a token rotated away past the window is reuse at logout, global logout and revoke", testReuseAtEveryEndpoint},
		{"reuse: the predecessor inside the window still logs its session out", testLogoutWithGracePredecessor},
		// races
		{"race: 50 concurrent presentations with a window give one rotation, 100 rounds", testConcurrentGrace},
		{"race: 50 concurrent presentations in strict mode give one success and a revocation", testConcurrentStrict},
		{"race: refresh against logout, admin revoke and password change", testRefreshRacesRevocation},
		{"race: login against disable", testLoginRacesDisable},
		{"race: login with the old password against a password change", testLoginRacesPasswordChange},
		{"race: a role removed during the password check is not in the login's token", testRoleRemovedDuringLogin},
		{"race: login against role removal, 30 rounds", testLoginRacesRoleRemoval},
		{"race: concurrent logins past the session cap end with at most the cap", testSessionCapUnderConcurrency},
		{"race (real clock): 2, 8 and 50 concurrent presentations, 100 rounds each, no false reuse", testRealClockRaces},
		{"race (real clock, instances with skewed clocks): 2, 8 and 50 concurrent presentations, 100 rounds each", testSkewedClockRaces},
		// revocation (SPEC §3)
		{"revocation: logout, global logout and own sessions", testLogout},
		{"revocation: password change revokes the other sessions", testPasswordChange},
		{"revocation: admin disable, revoke all, revoke one", testAdmin},
		{"revocation: RFC 7009 revoke of refresh and access tokens", testRevokeEndpoint},
		{"revocation: another instance learns of revocations by sync", testTwinSync},
		{"revocation: a just-expired session's access tokens are denied too", testRevokeJustExpired},
		{"revocation: taking a role away ends the user's sessions", testRolesReduced},
		{"revocation: concurrent role edits cannot hide a lost role", testRoleLossDecidedOnLockedRow},
		{"logout: a used refresh token is reuse: it ends its own session, never the user's others", testLogoutWithDeadToken},
		{"logout: a dead refresh token beside a valid access token still ends the access token's session", testLogoutDeadRefreshWithAccess},
		{"growth: revoking an already revoked token or session writes nothing", testIdempotentRevocation},
		{"growth: a login past the session cap evicts the least recently used session", testSessionCap},
		{"growth: audit events past retention are purged", testAuditRetention},
		{"growth: the revocation feed pages through large answers and skips nothing", testFeedPages},
		// clients
		{"clients: registration, secrets shown once and stored hashed", testClientRegistration},
		{"clients: authentication refusals are all invalid_client", testClientAuthentication},
		{"clients: tokens carry client_id and the client's audience; sessions remember their client", testClientSessions},
		{"clients: a refresh token presented by another client is invalid_grant and changes nothing", testRefreshByAnotherClient},
		{"clients: client_credentials tokens, and their end when the client is disabled, loses a role or is deleted", testClientCredentials},
		{"clients: a client may revoke only tokens issued to it", testRevokeOwnTokensOnly},
		{"clients: a clients file creates and updates", testApplyClients},
		{"clients: a rejected clients file changes nothing", testClientsFileAllOrNothing},
		{"clients: the default client must be public", testDefaultClientMustBePublic},
		{"clients: a client revocation denies the client's current token family", testClientRevocationDeniesTheCurrentFamily},
		// audit and purge
		{"audit: events of logins, refreshes and revocations", testAudit},
		{"audit: a rotation from another address or user agent writes session_moved; every refresh only when asked", testAuditSessionMoved},
		{"purge: expired sessions and denylist entries go", testPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}
