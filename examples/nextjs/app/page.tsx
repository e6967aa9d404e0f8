export default function Home() {
  return (
    <>
      <h1>Rotor + Next.js</h1>
      <p>
        The refresh token is an HttpOnly <code>__Host-rotor_refresh</code> cookie of this origin: the browser reaches Rotor
        through <code>/auth/*</code> (a route handler that forwards to Rotor). Server components read a second HttpOnly cookie,
        the access token, which <code>proxy.ts</code> refreshes at most once per request when it is due.
      </p>
      <ul>
        <li><a href="/signup">Sign up</a>, then <a href="/login">log in</a>.</li>
        <li><a href="/protected">Protected</a> is rendered on the server.</li>
        <li><a href="/notes">Notes</a> is a client page calling an API route with a bearer token.</li>
        <li><a href="/sessions">Sessions</a> lists your sessions; sign out this device or others.</li>
      </ul>
    </>
  );
}
