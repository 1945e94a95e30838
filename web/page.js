// The generated page's glue: loads the model with progress; a chat view (history, system prompt,
// regenerate, copy, clear) when the model has a chat template, the completion view otherwise (the
// prompt shown before its continuation); speed stats. Automation hooks: <html data-state=
// "loading|ready|generating|error">, window.bitnet (the loaded model), and performance marks
// "bitnet:load-start" / "bitnet:ready".
const MANIFEST_URL = "model/manifest.json";
const $ = (id) => document.getElementById(id);
const ui = {
  bar: $("download-bar"), download: $("download-text"), runtime: $("card-runtime"),
  errorPanel: $("error-panel"), errorMessage: $("error-message"),
  form: $("generate-form"), prompt: $("prompt"), generate: $("generate"), stop: $("stop"),
  regenerate: $("regenerate"), clear: $("clear"), copy: $("copy"),
  maxTokens: $("max-tokens"), temperature: $("temperature"), topP: $("top-p"), repetition: $("repetition-penalty"),
  seed: $("seed"), fixedSeed: $("fixed-seed"),
  chatSetting: $("chat-setting"), chat: $("chat"), systemSetting: $("system-setting"), system: $("system"),
  history: $("history"), outputCard: $("output-card"), output: $("output"), stats: $("stats"),
};

const mb = (bytes) => (bytes / 1e6).toFixed(1);
const fixed = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
const conversation = []; // chat view: [{role, content}] of the finished turns

function setState(state) {
  document.documentElement.dataset.state = state;
  ui.generate.disabled = state !== "ready";
  ui.stop.disabled = state !== "generating";
  ui.regenerate.disabled = state !== "ready" || !conversation.some((m) => m.role === "assistant");
  ui.clear.disabled = state === "generating";
  ui.copy.disabled = state !== "ready" || !lastReply();
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
    repetitionPenalty: number(ui.repetition, "Repetition penalty"),
    ...(ui.fixedSeed.checked && { seed: number(ui.seed, "Seed") }),
  };
}

function finalStats(s) {
  const reused = s.reusedTokens ? ` (${s.reusedTokens} reused)` : "";
  const dropped = s.droppedMessages ? ` · ${s.droppedMessages} oldest messages dropped to fit the context` : "";
  return `${s.promptTokens} prompt tokens${reused} · ${s.newTokens} new · first token after ${fixed(s.ttftSeconds * 1e3, 0)} ms · ` +
    `prefill ${fixed(s.prefillTokensPerSecond)} tok/s · decode ${fixed(s.decodeTokensPerSecond)} tok/s · seed ${s.seed}${dropped}`;
}

const chatMode = (model) => model.info.chat && ui.chat.checked;
const lastReply = () => (ui.chat.checked && !ui.chatSetting.hidden ? conversation.at(-1)?.role === "assistant" && conversation.at(-1).content : ui.output.dataset.text);

function bubble(role, content) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  item.dataset.role = role;
  item.textContent = content;
  ui.history.append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function renderHistory() {
  ui.history.replaceChildren();
  for (const message of conversation) bubble(message.role, message.content);
  ui.history.hidden = conversation.length === 0;
}

// Streams pieces into `target`; returns the text.
async function streamInto(target, pieces) {
  const start = performance.now();
  let count = 0, text = "";
  for await (const piece of pieces) {
    text += piece.text;
    if (piece.text) target.append(piece.text);
    count += 1;
    ui.stats.textContent = `${count} tokens · ${fixed(count / ((performance.now() - start) / 1e3))} tok/s`;
  }
  return text;
}

async function generate(model, controller) {
  const settings = { ...readSettings(), signal: controller.signal };
  ui.stats.textContent = "Thinking…";
  setState("generating");
  if (chatMode(model)) {
    const text = ui.prompt.value;
    if (text.trim()) conversation.push({ role: "user", content: text });
    if (conversation.at(-1)?.role !== "user") throw new Error("Write a message first.");
    ui.prompt.value = "";
    renderHistory();
    const system = ui.system.value.trim() ? [{ role: "system", content: ui.system.value }] : [];
    const reply = bubble("assistant", "");
    reply.classList.add("streaming");
    try {
      const content = await streamInto(reply, model.chat([...system, ...conversation], { ...settings, stream: true, contextPolicy: "drop_oldest" }));
      conversation.push({ role: "assistant", content });
    } finally {
      reply.classList.remove("streaming");
    }
  } else {
    const prompt = document.createElement("span");
    prompt.className = "prompt-echo";
    prompt.textContent = ui.prompt.value;
    const continuation = document.createElement("span");
    ui.output.replaceChildren(prompt, continuation);
    ui.output.dataset.text = await streamInto(continuation, model.generate(ui.prompt.value, settings));
  }
  ui.stats.textContent = (controller.signal.aborted ? "Stopped · " : "") + finalStats(model.lastStats);
  if (!ui.fixedSeed.checked) ui.seed.value = String(model.lastStats.seed); // shown, so a good one can be kept
}

function showView(model) {
  const chat = chatMode(model);
  ui.history.hidden = !chat || conversation.length === 0;
  ui.systemSetting.hidden = !chat || !model.info.chatSystem;
  ui.regenerate.hidden = ui.clear.hidden = !chat;
  ui.outputCard.hidden = chat;
  ui.prompt.placeholder = chat ? "Write a message" : "Once upon a time";
  ui.generate.textContent = chat ? "Send" : "Generate";
  $("prompt-title").firstElementChild.textContent = chat ? "Chat" : "Prompt";
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
  const { simd, threads, crossOriginIsolated, threadsFallback, downloadBytes, cachedBytes } = model.info;
  ui.runtime.textContent = `${simd} · ${threads} thread${threads === 1 ? "" : "s"}${crossOriginIsolated ? " · isolated" : ""}`;
  ui.runtime.title = threadsFallback ?? "";
  const source = cachedBytes >= downloadBytes ? "loaded from cache" : cachedBytes > 0 ? `${mb(cachedBytes)} MB from cache` : "downloaded";
  ui.download.textContent = `Ready: ${mb(downloadBytes)} MB of weights ${source}.`;
  ui.bar.value = ui.bar.max;
  ui.chatSetting.hidden = !model.info.chat;
  if (model.info.chat) ui.prompt.value = "";
  showView(model);

  let controller = null;
  const run = async () => {
    controller = new AbortController();
    ui.errorPanel.hidden = true;
    try {
      await generate(model, controller);
    } catch (error) {
      if (controller.signal.aborted) ui.stats.textContent = "Stopped.";
      else {
        ui.stats.textContent = ""; // the last run's stats no longer describe anything
        showError(error); // a bad setting or prompt is not fatal: the model still works
      }
    }
    setState("ready");
  };
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (document.documentElement.dataset.state === "ready") run();
  });
  ui.stop.addEventListener("click", () => controller?.abort());
  ui.regenerate.addEventListener("click", () => {
    if (conversation.at(-1)?.role === "assistant") conversation.pop();
    ui.prompt.value = "";
    run();
  });
  ui.clear.addEventListener("click", () => {
    conversation.length = 0;
    renderHistory();
    ui.stats.textContent = "";
    setState("ready");
  });
  ui.copy.addEventListener("click", () => navigator.clipboard?.writeText(lastReply() || ""));
  ui.chat.addEventListener("change", () => showView(model));
  ui.fixedSeed.addEventListener("change", () => { ui.seed.disabled = !ui.fixedSeed.checked; });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ui.form.requestSubmit();
    } else if (event.key === "Escape") controller?.abort();
  });
  setState("ready");
}

if (location.protocol !== "file:") { // served.js explains that case
  setState("loading");
  main().catch((error) => {
    showError(error);
    setState("error");
  });
}
