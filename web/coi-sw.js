// Opt-in service worker (`bitnet-wasm build --coi-service-worker`) for static hosts that cannot
// send headers, e.g. GitHub Pages: it adds the cross-origin isolation headers to every
// same-origin response, so the page, reloaded under its control, may run threaded wasm.
const HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (new URL(request.url).origin !== self.location.origin) return; // left to the browser
  event.respondWith(fetch(request).then((response) => {
    if (response.type === "opaque" || response.type === "opaqueredirect") return response;
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(HEADERS)) headers.set(name, value);
    const body = NULL_BODY_STATUSES.has(response.status) ? null : response.body;
    return new Response(body, { status: response.status, statusText: response.statusText, headers });
  }));
});
