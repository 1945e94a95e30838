"""Time to first token of each turn of a 5-turn chat, with KV reuse and without, in headless Chromium
(one thread) on a random model of the large shape (bench/random_model.py LARGE), built once.

    python scripts/chat_ttft.py --work /tmp/ttft      # prints [turn, prompt tokens, prefilled tokens, TTFT ms] rows
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

import bitnet_wasm
from bitnet_wasm.bench.browser import CHROMIUM_ARGS, chromium_executable
from bitnet_wasm.bench.random_model import LARGE, write_random_bitnet
from bitnet_wasm.serve import SiteServer

TURN = "Tell me about the old lighthouse keeper and the boats coming home to the harbour in the evening light."
CONVERSATION = """async ([turn, cache]) => {
  const { BitNet } = await import("/bitnet.js");
  const model = await BitNet.load("/model/manifest.json", { threads: 1 });
  const messages = [{ role: "system", content: "You are a storyteller." }], rows = [];
  for (let i = 1; i <= 5; i++) {
    messages.push({ role: "user", content: `${i}. ${turn}` });
    const reply = await model.chat(messages, { temperature: 0, maxNewTokens: 16, ignoreEos: true, cachePrompt: cache });
    const s = reply.stats;
    rows.push([i, s.promptTokens, s.prefillTokens, Math.round(s.ttftSeconds * 1000)]);
    messages.push({ role: "assistant", content: reply.text });
  }
  model.dispose();
  return rows;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the random model and its site (reused)")
    args = parser.parse_args()
    site = args.work / "site-wasm"
    if not (site / "index.html").exists():
        if not (args.work / "hf" / "config.json").exists():
            write_random_bitnet(args.work / "hf", LARGE, seed=1)
        started = time.time()
        bitnet_wasm.build(args.work / "hf", site, layout="mad", context=1024, progress=False)
        print(f"built in {time.time() - started:.0f} s", flush=True)
    with SiteServer(site, "127.0.0.1", 0, quiet=True) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(p), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(server.url + "model/manifest.json")
        for cache in (True, False):
            print("with reuse" if cache else "without reuse", page.evaluate(CONVERSATION, [TURN, cache]), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
