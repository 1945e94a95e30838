// The text side of generation, the same as python/bitnet_wasm/text_stream.py: stop strings end
// the text. The shared specification is tests/data/text_stream_cases.json.

// Text arrives in pieces; push returns what may be shown: it holds back a tail that could begin a
// stop string, and cuts the text where the first stop string starts.
export class StopStrings {
  constructor(stop) {
    this.stop = stop;
    this.text = "";      // all text so far, up to the stop string once one is found
    this.stopped = false;
    this.emitted = 0;
  }

  push(piece, final = false) {
    const start = this.emitted; // a stop string cannot begin in text already shown
    this.text += piece;
    const hits = this.stop.map((s) => this.text.indexOf(s, start)).filter((i) => i >= 0);
    let end;
    if (hits.length) {
      this.stopped = true;
      this.text = this.text.slice(0, Math.min(...hits));
      end = this.text.length;
    } else {
      end = final ? this.text.length : this.text.length - this.heldBack();
    }
    const shown = this.text.slice(this.emitted, Math.max(end, this.emitted));
    this.emitted = Math.max(end, this.emitted);
    return shown;
  }

  heldBack() {
    let held = 0;
    for (const s of this.stop)
      for (let k = Math.min(s.length - 1, this.text.length); k > held; k--)
        if (this.text.endsWith(s.slice(0, k))) {
          held = k;
          break;
        }
    return held;
  }
}
