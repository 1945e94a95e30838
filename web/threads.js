// A follower thread (see worker.js and followers.js): one more instance of the threaded module over the leader's
// shared memory, on its own stack, running its share of every parallel op from then on.
self.onmessage = async ({ data: { module, memory, index, stackTop } }) => {
  let exports;
  try {
    ({ exports } = await WebAssembly.instantiate(module, { env: { memory } }));
    exports.__stack_pointer.value = stackTop;
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
    return;
  }
  postMessage({ ready: true });
  exports.bn_thread_main(index); // never returns: the page terminates this worker with the model
};
