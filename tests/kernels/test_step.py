"""step.c: the penalties against their definition in bitnet.h (float32 arithmetic, exact), and the
generation step's choice, stop codes and bounds."""
import numpy as np
import pytest
from bitnet_wasm.wasm_kernels.abi import defines

D = defines()
STEP_WORDS, FIRST_STOP = D["BN_STEP_WORDS"], D["BN_STEP_STOP_TOKENS"]


def penalized(logits, history, repetition, presence, frequency):
    """bitnet.h's definition, one float32 operation at a time."""
    out = logits.copy()
    f32 = np.float32
    for v in dict.fromkeys(t for t in history if 0 <= t < logits.size):
        count = sum(1 for t in history if t == v)
        value = out[v]
        if repetition != 1:
            value = value / f32(repetition) if value > 0 else value * f32(repetition)
        out[v] = f32(value - (f32(count) * f32(frequency) + f32(presence)))
    return out


@pytest.mark.parametrize("repetition, presence, frequency", [(1.3, 0.0, 0.0), (1.0, 0.5, 0.0), (1.0, 0.0, 0.25), (0.7, -0.4, 1.5), (1.1, 0.3, 0.2)])
def test_penalties_follow_their_definition(lib, repetition, presence, frequency):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, 101).astype(np.float32)
    history = rng.integers(-2, 104, 60).astype(np.int32)  # repeats, and ids outside the vocabulary
    got = logits.copy()
    lib.bn_penalize(got, 101, history, history.size, repetition, presence, frequency, np.zeros(101, np.int32))
    np.testing.assert_array_equal(got.view(np.uint32), penalized(logits, history.tolist(), repetition, presence, frequency).view(np.uint32))


def test_no_penalty_changes_nothing(lib):
    logits = np.random.default_rng(2).normal(0, 1, 50).astype(np.float32)
    got = logits.copy()
    lib.bn_penalize(got, 50, np.arange(50, dtype=np.int32), 50, 1.0, 0.0, 0.0, np.zeros(50, np.int32))
    np.testing.assert_array_equal(got, logits)


def step(lib, logits, tokens, position, generated, max_new, stop_tokens=(), temperature=0.0, penalties=(1.0, 0.0, 0.0), seed=5):
    words = np.full(STEP_WORDS, -1, np.int32)
    words[FIRST_STOP:FIRST_STOP + len(stop_tokens)] = stop_tokens
    n = logits.size
    code = lib.bn_generate_step(logits, n, tokens, tokens.size, position, generated, max_new, words, temperature, 0, 1.0, 0.0,
                                *penalties, np.array([seed], np.uint64), np.zeros(n, np.float32), np.zeros(n, np.int32))
    return code, int(words[D["BN_STEP_TOKEN"]])


def test_step_chooses_stores_and_says_why_it_stops(lib):
    logits = np.zeros(20, np.float32)
    logits[7] = 5.0
    tokens = np.full(10, 3, np.int32)
    assert step(lib, logits.copy(), tokens, 4, 0, 8) == (D["BN_STEP_CONTINUE"], 7) and tokens[4] == 7
    assert step(lib, logits.copy(), tokens, 4, 0, 8, stop_tokens=(2, 7)) == (D["BN_STEP_EOS"], 7)
    assert step(lib, logits.copy(), tokens, 4, 7, 8) == (D["BN_STEP_LENGTH"], 7)
    assert step(lib, logits.copy(), tokens, 9, 0, 8) == (D["BN_STEP_CONTINUE"], 7) and tokens[9] == 7
    before = tokens.copy()
    assert step(lib, logits.copy(), tokens, 10, 0, 8) == (D["BN_STEP_CONTEXT"], 7)
    np.testing.assert_array_equal(tokens, before)  # no room for it
    for position, generated, max_new in ((0, 0, 8), (11, 0, 8), (4, -1, 8), (4, 8, 8)):
        assert step(lib, logits.copy(), tokens, position, generated, max_new)[0] == D["BN_STEP_BAD_ARGUMENT"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 6, 19])  # the first, a middle and the last logit
def test_step_refuses_logits_that_are_not_finite_and_chooses_nothing(lib, where, bad):
    logits = np.zeros(20, np.float32)
    logits[where] = bad
    tokens = np.full(10, 3, np.int32)
    assert step(lib, logits, tokens, 4, 0, 8, temperature=0.0)[0] == D["BN_STEP_BAD_LOGITS"]
    assert step(lib, logits, tokens, 4, 0, 8, temperature=0.8)[0] == D["BN_STEP_BAD_LOGITS"]
    assert (tokens == 3).all()


def test_step_samples_the_penalized_logits(lib):
    logits = np.array([4.0, 3.9, 1.0, 0.5], np.float32)
    tokens = np.array([0, 0, 0, 0, 0, 0], np.int32)
    assert step(lib, logits.copy(), tokens, 3, 0, 8)[1] == 0
    assert step(lib, logits.copy(), tokens, 3, 0, 8, penalties=(1.0, 0.0, 0.1))[1] == 1  # 4.0 - 3 * 0.1 < 3.9
    state, expected = np.array([9], np.uint64), penalized(logits, [0, 0, 0], 1.2, 0.0, 0.0)
    sampled = lib.bn_sample(expected, 4, 0.8, 0, 1.0, 0.0, state, np.zeros(4, np.float32), np.zeros(4, np.int32))
    assert step(lib, logits.copy(), tokens, 3, 0, 8, temperature=0.8, penalties=(1.2, 0.0, 0.0), seed=9)[1] == sampled
