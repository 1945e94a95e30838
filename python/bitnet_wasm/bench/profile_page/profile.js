// The profile page (bench/profile.py): window.profile(options) runs profile_worker.js in a module worker
// (from a blob, as is the runtime's dot_form.js it imports: the page's files are served by the browser context, not the site's server).
const moduleUrl = async (name) =>
  URL.createObjectURL(new Blob([await (await fetch(new URL(name, import.meta.url))).text()], { type: "text/javascript" }));

window.profile = async (options) => {
  const worker = new Worker(await moduleUrl("profile_worker.js"), { type: "module" });
  try {
    const { data } = await new Promise((resolve, reject) => {
      worker.onmessage = resolve;
      worker.onerror = (e) => reject(new Error(`the profile worker failed: ${e.message}`));
      moduleUrl("dot_form.js").then((dotFormUrl) => worker.postMessage({ ...options, dotFormUrl }), reject);
    });
    if (data.error) throw new Error(data.error);
    return data.result;
  } finally {
    worker.terminate();
  }
};
