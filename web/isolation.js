// The page's side of the opt-in service worker coi-sw.js: registers it and, while the page is not
// yet under its control, reloads once so that the page comes back cross-origin isolated.
const RELOADED = "bitnet-wasm:coi-reloaded";

/** Resolves to true when the page is about to reload (the caller should stop), else false. */
export async function isolate(serviceWorkerUrl) {
  if (self.crossOriginIsolated) {
    sessionStorage.removeItem(RELOADED);
    return false;
  }
  const container = navigator.serviceWorker;
  if (!container) return false; // e.g. not a secure context: runs on one thread
  // loaded under the worker yet not isolated: this browser does not allow it; one reload at most
  if (container.controller || sessionStorage.getItem(RELOADED)) return false;
  const controlled = new Promise((resolve) => container.addEventListener("controllerchange", resolve, { once: true }));
  await container.register(serviceWorkerUrl);
  if (!container.controller) await controlled;
  sessionStorage.setItem(RELOADED, "1");
  location.reload();
  return true;
}
