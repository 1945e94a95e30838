// The profile page (bench/profile.py): window.profile(options) runs profile_worker.js in a worker
// (from a blob: the page's files are served by the browser context, not the site's server).
window.profile = async (options) => {
  const source = await (await fetch(new URL("profile_worker.js", import.meta.url))).text();
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
  try {
    const { data } = await new Promise((resolve, reject) => {
      worker.onmessage = resolve;
      worker.onerror = (e) => reject(new Error(`the profile worker failed: ${e.message}`));
      worker.postMessage(options);
    });
    if (data.error) throw new Error(data.error);
    return data.result;
  } finally {
    worker.terminate();
  }
};
