"""One Model shared by threads: calls take turns, so every thread gets what it would alone (both
backends); a second generation started in the thread whose first is unfinished is a clear error."""
import threading

import pytest

import bitnet_wasm
from bitnet_wasm.compiler.writers import write_bitnet_packed

PROMPTS = [[1, 2, 3], [7, 8, 9, 10], [42], [5, 6]]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("threads")
    write_bitnet_packed(root / "hf", hidden=48, layers=2, heads=3, kv_heads=1, intermediate=80, vocab=300)
    bitnet_wasm.build(root / "hf", root / "site", layout="mad", progress=False)
    return root / "site"


@pytest.mark.parametrize("backend", ["native", "wasm"])
def test_threads_sharing_a_model_get_what_they_would_alone(site, backend):
    model = bitnet_wasm.load(site, backend=backend)
    alone = {i: model.generate(p, max_new_tokens=12, temperature=0).tokens for i, p in enumerate(PROMPTS)}
    logits_alone = model.logits(PROMPTS[1])
    results, errors = {}, []

    def work(i):
        try:
            for round_ in range(5):
                results[i, round_] = model.generate(PROMPTS[i], max_new_tokens=12, temperature=0).tokens
                assert (model.logits(PROMPTS[1]) == logits_alone).all()
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and all(tokens == alone[i] for (i, _), tokens in results.items()) and len(results) == 20


def test_a_second_generation_in_the_same_thread_is_refused_while_the_first_runs(site):
    model = bitnet_wasm.load(site)
    first = model.stream([1, 2, 3], max_new_tokens=8, temperature=0)
    next(first)
    with pytest.raises(RuntimeError, match="busy with an unfinished generation in this thread"):
        model.logits([1, 2])
    first.close()
    assert model.logits([1, 2]).shape == (2, 300)
