package tokens

// Observer hears the domain's events, each once, in the function that
// carries it out (as wtf counts errors in the one place every error passes):
// metrics are counted here, never in handlers. Calls are made after the
// event committed; implementations must be safe for concurrent use and
// quick.
type Observer interface {
	// Refreshed is a successful refresh: a rotation, or a replay inside
	// the grace window (SPEC §2.3).
	Refreshed(replay bool)
	// ReuseDetected is a used token presented again: its session was
	// revoked (and counted by SessionsRevoked too).
	ReuseDetected()
	// SessionsRevoked is n sessions revoked for reason, as the store wrote
	// them (a session already revoked is not counted again).
	SessionsRevoked(reason Reason, n int)
	// TokenDenied is one access token denylisted by jti for reason.
	TokenDenied(reason Reason)
	// LoginFailed is a login refused for bad credentials or a disabled
	// user (not for a busy or unavailable server).
	LoginFailed()
}

// nopObserver is the Observer of a Service configured without one.
type nopObserver struct{}

func (nopObserver) Refreshed(bool)              {}
func (nopObserver) ReuseDetected()              {}
func (nopObserver) SessionsRevoked(Reason, int) {}
func (nopObserver) TokenDenied(Reason)          {}
func (nopObserver) LoginFailed()                {}

// revoked reports sessions revoked for reason to the observer and adds
// their entries to the local denylist.
func (s *Service) revoked(reason Reason, revs []Revocation) {
	s.deny.Add(revs...)
	n := 0
	for _, r := range revs {
		if r.Kind == RevokeSession {
			n++
		}
	}
	if n > 0 {
		s.obs.SessionsRevoked(reason, n)
	}
}
