// A module Worker of a runtime script that may live on another origin (bitnet.js imported from a CDN):
// browsers refuse `new Worker(url)` across origins, so such a worker starts from a same-origin blob
// that imports the real script, whose own relative imports then resolve against its real URL. A
// same-origin script starts directly (a page under `worker-src 'self'` allows no blob: workers).
export function moduleWorker(url) {
  if (url.origin === globalThis.location.origin) return new Worker(url, { type: "module" });
  const blobUrl = URL.createObjectURL(new Blob([`import ${JSON.stringify(url.href)};\n`], { type: "text/javascript" }));
  try {
    return new Worker(blobUrl, { type: "module" });
  } finally {
    URL.revokeObjectURL(blobUrl); // the Worker constructor has resolved it already
  }
}
