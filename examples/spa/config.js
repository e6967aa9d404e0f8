// Deployment configuration of this example, written by whoever serves it and
// served from the page's own origin. The API address is fixed here, never
// taken from the page's URL: a link could otherwise make the page send the
// password typed into it to any server.
window.ROTOR_CONFIG = {
  api: "http://localhost:8080",
};
