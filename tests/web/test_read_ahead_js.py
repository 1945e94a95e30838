"""web/read_ahead.js in each browser engine, on a model whose one-token passes take scripted times: the first passes
slow (as while the engine still compiles the forward pass), then each setting at its own speed."""
import pytest
from bitnet_wasm.web import WEB_DIR

PICK = """async ({ warming, steady }) => {
  const { pickReadAhead } = await import("/read_ahead.js");
  let setting = 1, pass = 0;
  const exports = { bn_set_read_ahead: (on) => (setting = on === 0 || on === 1 ? on : setting) };
  const forwardOneToken = () => {
    const end = performance.now() + (pass < warming.length ? warming[pass] : steady[setting]);
    pass++;
    while (performance.now() < end);
  };
  return { picked: pickReadAhead(exports, forwardOneToken), passes: pass };
}"""
WARMING = [60, 40, 25]  # ms: with setting 1 (the default) throughout


@pytest.mark.parametrize("steady, fastest", [({"0": 6, "1": 12}, 0), ({"0": 12, "1": 6}, 1)])
def test_the_pick_waits_for_the_passes_to_settle_then_keeps_the_faster(page, served_dir, steady, fastest):
    """Timed from the first pass, without reading ahead would lose every warming pass it ran (it did, at 2 threads)."""
    page.goto(served_dir(WEB_DIR) + "read_ahead.js")
    result = page.evaluate(PICK, {"warming": WARMING, "steady": steady})
    assert result["picked"] == fastest
    assert len(WARMING) < result["passes"] <= 8 + 4  # the warming passes, at least one settled, then the four timed
