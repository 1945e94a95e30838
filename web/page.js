// The generated page's glue: loads the model with progress, streams generations into the
// output, and reports speed. Automation hooks: <html data-state="loading|ready|generating|error">,
// window.bitnet (the loaded model), and performance marks "bitnet:load-start" / "bitnet:ready".
const MANIFEST_URL = "model/manifest.json";
const $ = (id) => document.getElementById(id);
const ui = {
  bar: $("download-bar"), download: $("download-text"), runtime: $("card-runtime"),
  errorPanel: $("error-panel"), errorMessage: $("error-message"),
  form: $("generate-form"), prompt: $("prompt"), generate: $("generate"), stop: $("stop"),
  maxTokens: $("max-tokens"), temperature: $("temperature"), topP: $("top-p"), seed: $("seed"),
  chatSetting: $("chat-setting"), chat: $("chat"), output: $("output"), stats: $("stats"),
};

const mb = (bytes) => (bytes / 1e6).toFixed(1);
const fixed = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "–");

function setState(state) {
  document.documentElement.dataset.state = state;
  ui.generate.disabled = state !== "ready";
  ui.stop.disabled = state !== "generating";
}

function showError(error) {
  console.error(error);
  ui.errorMessage.textContent = error?.message || String(error);
  ui.errorPanel.hidden = false;
}

function showProgress({ loadedBytes, totalBytes, mbPerSecond, etaSeconds, phase }) {
  ui.bar.max = totalBytes || 1;
  ui.bar.value = loadedBytes;
  const eta = Number.isFinite(etaSeconds) && loadedBytes < totalBytes ? ` · ${fixed(etaSeconds)} s left` : "";
  ui.download.textContent = `${phase ?? "loading"}: ${mb(loadedBytes)} of ${mb(totalBytes)} MB · ${fixed(mbPerSecond)} MB/s${eta}`;
}

// Reads and checks the settings; a bad value names its field.
function readSettings() {
  const number = (input, label) => {
    if (!input.checkValidity() || input.value === "") throw new Error(`${label}: ${input.validationMessage || "enter a number"}`);
    return Number(input.value);
  };
  return {
    maxNewTokens: number(ui.maxTokens, "Max new tokens"),
    temperature: number(ui.temperature, "Temperature"),
    topP: number(ui.topP, "Top-p"),
    seed: number(ui.seed, "Seed"),
  };
}

function finalStats(s) {
  return `${s.promptTokens} prompt tokens · ${s.newTokens} new · first token after ${fixed(s.ttftSeconds * 1e3, 0)} ms · ` +
    `prefill ${fixed(s.prefillTokensPerSecond)} tok/s · decode ${fixed(s.decodeTokensPerSecond)} tok/s`;
}

async function generate(model, controller) {
  const settings = readSettings();
  ui.output.textContent = "";
  ui.stats.textContent = "Thinking…";
  setState("generating");
  const start = performance.now();
  let count = 0;
  const prompt = model.info.chat && ui.chat.checked ? await model.formatChat(ui.prompt.value) : ui.prompt.value;
  for await (const piece of model.generate(prompt, { ...settings, signal: controller.signal })) {
    if (piece.text) ui.output.append(piece.text);
    count += 1;
    ui.stats.textContent = `${count} tokens · ${fixed(count / ((performance.now() - start) / 1e3))} tok/s`;
  }
  ui.stats.textContent = (controller.signal.aborted ? "Stopped · " : "") + finalStats(model.lastStats);
}

// ?threads=N and ?simd=relaxed|simd128 override the runtime's own choices (bitnet-wasm bench uses them).
function loadOptions() {
  const params = new URLSearchParams(location.search);
  return {
    ...(params.has("threads") && { threads: Number(params.get("threads")) }),
    ...(params.has("simd") && { simd: params.get("simd") }),
  };
}

async function main() {
  const serviceWorker = document.documentElement.dataset.coiServiceWorker; // set by build --coi-service-worker
  if (serviceWorker && (await (await import("./isolation.js")).isolate(serviceWorker))) return;
  performance.mark("bitnet:load-start");
  const { BitNet } = await import("./bitnet.js"); // imported here so a missing runtime shows in the error panel
  const model = await BitNet.load(MANIFEST_URL, { ...loadOptions(), onProgress: showProgress });
  performance.mark("bitnet:ready");
  window.bitnet = model;
  const { simd, threads, crossOriginIsolated, threadsFallback } = model.info;
  ui.runtime.textContent = `${simd} · ${threads} thread${threads === 1 ? "" : "s"}${crossOriginIsolated ? " · isolated" : ""}`;
  ui.runtime.title = threadsFallback ?? "";
  ui.download.textContent = `Ready: ${mb(model.info.downloadBytes)} MB of weights loaded.`;
  ui.bar.value = ui.bar.max;
  ui.chatSetting.hidden = !model.info.chat;

  let controller = null;
  ui.stop.addEventListener("click", () => controller?.abort());
  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    controller = new AbortController();
    ui.errorPanel.hidden = true;
    try {
      await generate(model, controller);
    } catch (error) {
      if (controller.signal.aborted) ui.stats.textContent = "Stopped.";
      else showError(error); // a bad setting or prompt is not fatal: the model still works
    }
    setState("ready");
  });
  setState("ready");
}

setState("loading");
main().catch((error) => {
  showError(error);
  setState("error");
});
