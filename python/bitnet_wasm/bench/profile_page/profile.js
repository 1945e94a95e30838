// The profile page (bench/profile.py): window.profile(options) runs profile_worker.js in module workers
// (from a blob, as are the runtime's dot_form.js and read_ahead.js it imports: the page's files are served by the browser context, not the site's server).
const moduleUrl = async (name) =>
  URL.createObjectURL(new Blob([await (await fetch(new URL(name, import.meta.url))).text()], { type: "text/javascript" }));

const inWorker = async (options) => {
  const worker = new Worker(await moduleUrl("profile_worker.js"), { type: "module" });
  try {
    const { data } = await new Promise((resolve, reject) => {
      worker.onmessage = resolve;
      worker.onerror = (e) => reject(new Error(`the profile worker failed: ${e.message}`));
      Promise.all([moduleUrl("dot_form.js"), moduleUrl("read_ahead.js")]).then(
        ([dotFormUrl, readAheadUrl]) => worker.postMessage({ ...options, dotFormUrl, readAheadUrl }), reject);
    });
    if (data.error) throw new Error(data.error);
    return data.result;
  } finally {
    worker.terminate();
  }
};

// The profiling build, then the site's own module with its choices (dot form, read-ahead); each in a worker that ends with it,
// so that one copy of the weights lives at a time.
window.profile = async ({ siteWasmUrl, ...options }) => {
  const profiled = await inWorker(options);
  const site = await inWorker({ ...options, wasmUrl: siteWasmUrl, dotForm: profiled.dotForm, readAhead: profiled.readAhead });
  return { ...profiled, site };
};
