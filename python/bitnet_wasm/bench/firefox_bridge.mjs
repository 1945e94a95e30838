// Firefox over WebDriver BiDi for bitnet_wasm.bench.firefox: puppeteer-core driven by JSON lines.
// argv: the puppeteer-core package folder, the Firefox executable. stdin: {id, op, ...} per line;
// stdout: {id, result} or {id, error} per line, in order.
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import { join } from "node:path";

const [packageDir, executablePath] = process.argv.slice(2);
const { default: puppeteer } = await import(createRequire(join(packageDir, "noop.js")).resolve("puppeteer-core"));

let browser = null;
const pages = new Map(); // id -> {context, page}
let nextPage = 1;

// A function's source and its argument, run in the page as one expression (no string eval in the page).
const call = (source, arg) => `(${source})(${JSON.stringify(arg ?? null)})`;

const OPS = {
  async launch() {
    // no JSON viewer: a navigation to a .json URL stays an ordinary document that scripts can run in
    browser = await puppeteer.launch({ browser: "firefox", executablePath, headless: true, extraPrefsFirefox: { "devtools.jsonview.enabled": false } });
    return { version: await browser.version() };
  },
  async newPage() {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    pages.set(nextPage, { context, page });
    return nextPage++;
  },
  async goto({ page, url }) {
    await pages.get(page).page.goto(url, { waitUntil: "load" });
  },
  async evaluate({ page, source, arg }) {
    const value = await pages.get(page).page.evaluate(call(source, arg));
    return value === undefined ? null : value;
  },
  async screenshot({ page, path }) {
    await pages.get(page).page.screenshot({ path, fullPage: true });
  },
  async setViewport({ page, width, height }) {
    await pages.get(page).page.setViewport({ width, height });
  },
  async closePage({ page }) {
    // leave the page first: closing a context whose wasm threads sit in atomic waits left Firefox
    // ESR 153 unable to start the next page's threaded module (its load hung in the "wasm" phase)
    await pages.get(page)?.page.goto("about:blank");
    await pages.get(page)?.context.close();
    pages.delete(page);
  },
  async close() {
    await browser?.close();
    browser = null;
  },
};

const reply = (message) => process.stdout.write(JSON.stringify(message) + "\n");
let queue = Promise.resolve();
for await (const line of createInterface({ input: process.stdin })) {
  const { id, op, ...args } = JSON.parse(line);
  queue = queue.then(async () => {
    try {
      reply({ id, result: (await OPS[op](args)) ?? null });
    } catch (e) {
      reply({ id, error: e?.message ?? String(e) });
    }
  });
}
await queue;
await browser?.close();
