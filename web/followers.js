// The follower threads of a threaded model (threads.js), started on the page's thread when the
// inference worker asks: Firefox ESR has hung inside a worker's own `new Worker`.
import { moduleWorker } from "./spawn.js";

// How long a follower may take to say it is ready: generous, a loaded machine starts workers slowly.
export const FOLLOWER_START_MS = 30_000;

// One more instance of the threaded module per stack top; resolves to the workers once all of them
// are ready to take jobs.
export async function startFollowers(module, memory, stackTops) {
  const workers = [];
  const started = (index) => new Promise((resolve, reject) => {
    const worker = moduleWorker(new URL("./threads.js", import.meta.url));
    workers.push(worker);
    const timer = setTimeout(() => reject(new Error(`thread ${index} did not start within ${FOLLOWER_START_MS / 1000} s`)), FOLLOWER_START_MS);
    worker.onmessage = ({ data }) => {
      clearTimeout(timer);
      if (data.error) reject(new Error(`thread ${index}: ${data.error}`));
      else resolve();
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      reject(new Error(`thread ${index} could not start: ${event.message || "is threads.js served?"}`));
    };
    worker.postMessage({ module, memory, index, stackTop: stackTops[index - 1] });
  });
  try {
    await Promise.all(stackTops.map((_, i) => started(i + 1)));
  } catch (e) {
    for (const worker of workers) worker.terminate();
    throw e;
  }
  return workers;
}
