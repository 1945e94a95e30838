"""argmax, the splitmix64 stream and bn_sample (temperature, top-k, top-p, min-p) against
numpy and pure-python re-implementations of their definitions."""
import numpy as np
import pytest

MASK64 = 2**64 - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, (z ^ (z >> 31)) >> 32


def sample(lib, logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, state=None):
    state = np.array([12345], np.uint64) if state is None else state
    n = logits.size
    return lib.bn_sample(logits, n, temperature, top_k, top_p, min_p, state, np.zeros(n, np.float32), np.zeros(n, np.int32))


def draws(lib, logits, count, seed=7, **filters):
    state = np.array([seed], np.uint64)
    return np.array([sample(lib, logits, state=state, **filters) for _ in range(count)])


def kept_distribution(p, top_k=0, top_p=1.0, min_p=0.0):
    """The filtered, renormalized distribution, from the definitions in bitnet.h."""
    order = np.lexsort((np.arange(p.size), -p))  # descending p, ties by lower index
    keep = order[:top_k] if 0 < top_k < p.size else order
    if top_p < 1.0:
        cum = np.cumsum(p[keep]) / p[keep].sum()
        keep = keep[: np.searchsorted(cum, top_p) + 1]
    keep = keep[p[keep] >= min_p * p[keep].max()]
    q = np.zeros_like(p)
    q[keep] = p[keep] / p[keep].sum()
    return q


# ---- argmax, rng ----

@pytest.mark.parametrize("n", [1, 3, 17, 100, 129, 128256])
def test_argmax_is_first_maximum(lib, n):
    x = np.random.default_rng(n).integers(-5, 6, n).astype(np.float32)  # many ties
    assert lib.bn_argmax(x, n) == int(np.argmax(x))
    x[n // 2] = np.nan
    x[-1] = 99.0
    assert lib.bn_argmax(x, n) == n - 1  # nan is skipped, not a maximum


def test_argmax_edges(lib):
    assert lib.bn_argmax(np.full(6, -np.inf, np.float32), 6) == 0
    assert lib.bn_argmax(np.array([np.nan, 1.0, 2.0, 2.0], np.float32), 4) == 2
    assert lib.bn_argmax(np.zeros(0, np.float32), 0) == -1


def test_rng_is_splitmix64_high_bits(lib):
    state = np.array([2**63 + 12345], np.uint64)
    py_state = int(state[0])
    for _ in range(300):
        py_state, want = splitmix64(py_state)
        assert lib.bn_rng_next(state) == want
        assert int(state[0]) == py_state


# ---- bn_sample ----

def test_zero_temperature_and_top_k_1_are_argmax(lib):
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    state = np.array([1], np.uint64)
    assert sample(lib, logits, temperature=0.0, state=state) == np.argmax(logits)
    assert state[0] == 1  # greedy consumes no random number
    assert all(sample(lib, logits, temperature=t, top_k=1, state=state) == np.argmax(logits) for t in (0.1, 1.0, 5.0))


# probabilities 1/2, 1/4, 1/8, 1/16, 1/16 at temperature 1: kept sets by hand
HALVING = np.log(np.array([8, 4, 2, 1, 1], np.float64)).astype(np.float32)
HAND_KEPT = [
    (dict(top_p=0.7), {0, 1}),
    (dict(top_p=0.8), {0, 1, 2}),
    (dict(min_p=0.2), {0, 1, 2}),
    (dict(min_p=0.1), {0, 1, 2, 3, 4}),
    (dict(top_k=2, top_p=0.7), {0, 1}),  # top-p renormalizes within the top-k: 1/2 / 3/4 < 0.7
    (dict(top_k=2, top_p=0.6), {0}),
    (dict(top_k=4), {0, 1, 2, 3}),  # the tie 3/4 goes to the lower index
    (dict(top_k=3, min_p=0.3), {0, 1}),
]


@pytest.mark.parametrize("filters, kept", HAND_KEPT)
def test_filters_keep_the_hand_computed_set(lib, filters, kept):
    p = np.exp(HALVING.astype(np.float64))
    assert set(np.flatnonzero(kept_distribution(p / p.sum(), **filters))) == kept
    got = draws(lib, HALVING, 400, **filters)
    assert set(got.tolist()) == kept


CHI_CASES = [
    (np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0], np.float32), dict(temperature=1.0)),
    (np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0], np.float32), dict(temperature=2.5, top_k=4)),
    (np.array([3.0, 2.9, 1.0, 1.0, 0.2, -0.5, -2.0], np.float32), dict(temperature=0.7, top_p=0.9)),
    (np.array([3.0, 2.9, 1.0, 1.0, 0.2, -0.5, -2.0], np.float32), dict(temperature=1.3, top_k=5, top_p=0.95, min_p=0.1)),
]


@pytest.mark.parametrize("logits, filters", CHI_CASES)
def test_frequencies_match_the_filtered_distribution(libs, logits, filters):
    """Natively (thousands of calls); the wasm builds draw the same tokens, tested below."""
    lib = libs["native"]
    filters = dict(filters)
    temperature = filters.pop("temperature")
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    q = kept_distribution(p / p.sum(), **filters)
    count = 4000
    got = np.bincount(draws(lib, logits, count, temperature=temperature, **filters), minlength=logits.size)
    assert (got[q == 0] == 0).all()
    kept = q > 0
    chi2 = (((got[kept] - count * q[kept]) ** 2) / (count * q[kept])).sum()
    dof = kept.sum() - 1
    assert chi2 < dof + 5 * np.sqrt(2 * max(dof, 1))  # fixed seed: deterministic; ~4 sigma margin


def test_large_vocabulary_draws_reproduce_in_numpy(lib):
    """128k vocabulary: replay the draws with bn_expf's probabilities, a full numpy sort and the
    drawn u; each token must be the one the definition picks."""
    n = 128256
    logits = (np.random.default_rng(11).standard_normal(n) * 3).astype(np.float32)
    for temperature, filters in ((0.8, dict(top_k=40, top_p=0.9, min_p=0.05)), (1.0, dict(top_p=0.5)), (1.5, dict())):
        z = logits / np.float32(temperature)
        p = np.zeros(n, np.float32)
        lib.bn_expf_array(z - z.max(), p, n)
        order = np.lexsort((np.arange(n), -p))
        keep = order[: filters["top_k"]] if "top_k" in filters else order
        if "top_p" in filters:
            cum = np.cumsum(p[keep].astype(np.float64))
            keep = keep[: np.argmax(cum >= filters["top_p"] * cum[-1]) + 1]
        if "min_p" in filters:
            keep = keep[p[keep] >= np.float32(filters["min_p"]) * p[keep[0]]]
        keep = np.sort(keep)  # the draw walks the kept tokens in index order
        cum = np.cumsum(p[keep].astype(np.float64))
        state, py_state = np.array([99], np.uint64), 99
        for _ in range(20):
            py_state, r = splitmix64(py_state)
            want = keep[np.argmax(cum > (r >> 8) * 2.0**-24 * cum[-1])]
            assert sample(lib, logits, temperature, state=state, **filters) == want


def test_flat_distribution_ties_break_by_index(lib):
    logits = np.zeros(1000, np.float32)
    assert set(draws(lib, logits, 300, top_k=5).tolist()) == set(range(5))
    assert draws(lib, logits, 300, top_p=0.5).max() < 500


def test_degenerate_logits_fall_back_to_argmax(lib):
    x = np.array([0.0, np.inf, 1.0, np.inf], np.float32)
    assert sample(lib, x) == 1
    assert sample(lib, np.full(4, np.nan, np.float32)) == 0
    assert sample(lib, np.array([np.nan, -1.0, 5.0], np.float32), temperature=1e-30) == 2


def test_all_builds_draw_the_same_tokens(libs):
    logits = (np.random.default_rng(5).standard_normal(5000) * 2).astype(np.float32)
    settings = [(logits, dict(temperature=1.0)), (logits, dict(temperature=0.7, top_k=50)), (logits, dict(temperature=1.2, top_p=0.8, min_p=0.02))]
    runs = [[draws(l, x, 200, seed=3, **s).tolist() for x, s in settings + CHI_CASES] for l in libs.values()]
    assert all(r == runs[0] for r in runs[1:])
