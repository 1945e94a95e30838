"""The QAT trainer on a micro model: the loss falls, the export is the published layout and holds
exactly the trained model's quantized weights, and a paused run resumes where it stopped."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from tokenizers import Tokenizer

torch = pytest.importorskip("torch")

from bitnet_wasm.cli import main as cli  # noqa: E402

TEXT = """\
The river ran past the mill and under the old stone bridge, and the children of the village
would sit on the bridge in the evening and watch the water. The miller was a kind man. He gave
the children bread when they came to the mill, and he told them stories of the sea, which he
had seen once when he was young. The sea, he said, was a river without a bridge, and no one
could sit above it and watch it pass, because it did not pass: it came and went and came again.
The children did not believe him. A river, they said, must go somewhere. The miller laughed and
gave them more bread, and the water ran on under the bridge, past the mill and out of the village.
In the spring the river was high and brown, and in the summer it was low and clear, and in the
winter it was hard and white, and the children walked on it to the other side.
"""
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
STEPS = 60


def train_micro_model(out: Path, corpus: Path, bits: str, *extra: str) -> Path:
    """Trains the micro preset on `corpus` and returns the exported model folder (the place to add
    the build-and-generate test once the compiler lands: bitnet-wasm build <this dir>)."""
    code = cli(["train", "--corpus", str(corpus), "--out", str(out), "--preset", "micro", "--bits", bits,
                "--steps", str(STEPS), "--val-every", "20", "--seed", "1", *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "river.txt"
    path.write_text(TEXT * 4)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """bits -> the exported folder of a micro model trained with those bits (each trained once)."""
    runs = {}

    def get(bits: str) -> Path:
        if bits not in runs:
            runs[bits] = train_micro_model(tmp_path_factory.mktemp(f"run{bits}"), corpus, bits)
        return runs[bits]
    return get


def log_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def checkpoint_weights(out: Path) -> dict[str, np.ndarray]:
    return {k: v.float().numpy() for k, v in torch.load(out / "checkpoint.pt", weights_only=False)["model"].items()}


def exported(out: Path) -> dict[str, torch.Tensor]:
    with safe_open(out / "model.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def unpack(packed: np.ndarray, out_features: int) -> np.ndarray:
    """The 2B4T layout read back: row i*rows + r of W is in bits 2i..2i+1 of byte row r, as code + 1."""
    planes = [(packed >> (2 * i)) & 3 for i in range(4)]  # plane i: rows i*rows .. (i+1)*rows - 1
    return (np.concatenate(planes).astype(np.int8) - 1)[:out_features]


@pytest.mark.parametrize("bits", ["1.58", "1"])
def test_loss_falls(trained, bits):
    out = trained(bits)
    losses = [row["loss"] for row in log_rows(out) if "loss" in row]
    assert len(losses) == STEPS
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 1.5, f"--bits {bits}: loss {first:.3f} -> {last:.3f}"
    val = [row["val_loss"] for row in log_rows(out) if "val_loss" in row]
    vocab = json.loads((out / "config.json").read_text())["vocab_size"]
    assert len(val) == 3 and val[-1] < np.log(vocab) - 1.0  # validated, and far better than uniform


@pytest.mark.parametrize("bits", ["1.58", "1"])
def test_export_config(trained, bits):
    out = trained(bits)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BitNetForCausalLM"] and config["model_type"] == "bitnet"
    assert config["hidden_act"] == "relu2" and config["tie_word_embeddings"] is True
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert config["vocab_size"] == tokenizer.get_vocab_size()
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (32, 2, 2, 1)
    for key in ("rope_theta", "rms_norm_eps", "max_position_embeddings", "intermediate_size"):
        assert key in config
    if bits == "1.58":
        assert config["quantization_config"] == {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}
        assert "weight_bits" not in config
    else:
        assert config["weight_bits"] == 1 and "quantization_config" not in config


def test_tokenizer_files(trained):
    out = trained("1.58")
    config = json.loads((out / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    special = json.loads((out / "tokenizer_config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    assert tokenizer.token_to_id(special["bos_token"]) == config["bos_token_id"] == generation["bos_token_id"]
    assert tokenizer.token_to_id(special["eos_token"]) == config["eos_token_id"] == generation["eos_token_id"]
    text = "The miller's ünïcode river: 42 ☃\n"
    ids = tokenizer.encode(text).ids
    assert ids[0] == config["bos_token_id"] and tokenizer.decode(ids) == text


def test_b158_export_is_packed_trained_weights(trained):
    out = trained("1.58")
    weights, tensors = checkpoint_weights(out), exported(out)
    config = json.loads((out / "config.json").read_text())
    linear_names = {f"model.layers.{i}.{m}.weight" for i in range(config["num_hidden_layers"]) for m in LINEARS}
    expected_names = set(weights) | {n + "_scale" for n in linear_names}
    assert set(tensors) == expected_names
    for name in linear_names:
        w = weights[name]
        s = 1.0 / max(np.abs(w).mean(), 1e-5)
        codes = np.clip(np.round(w * s), -1, 1).astype(np.int8)
        packed, scale = tensors[name], tensors[name + "_scale"]
        assert packed.dtype == torch.uint8 and tuple(packed.shape) == (-(-w.shape[0] // 4), w.shape[1]), name
        assert scale.dtype == torch.bfloat16 and tuple(scale.shape) == (1,), name
        np.testing.assert_array_equal(unpack(packed.numpy(), w.shape[0]), codes, err_msg=name)
        assert abs(scale.float().item() - s) <= s * 2**-8, name
        assert set(np.unique(codes)) == {-1, 0, 1}, name  # a real ternary matrix, not all zeros
    for name in expected_names - linear_names - {n + "_scale" for n in linear_names}:
        assert tensors[name].dtype == torch.bfloat16 and tuple(tensors[name].shape) == weights[name].shape
        np.testing.assert_allclose(tensors[name].float().numpy(), weights[name], rtol=2**-8, atol=0)


def test_1bit_export_binarizes_to_trained_weights(trained):
    out = trained("1")
    weights, tensors = checkpoint_weights(out), exported(out)
    assert set(tensors) == set(weights)
    linear_names = [n for n in weights if any(f".{m}.weight" in n for m in LINEARS)]
    assert len(linear_names) == 2 * len(LINEARS)
    for name in linear_names:
        w, stored = weights[name], tensors[name].float().numpy()
        assert stored.shape == w.shape
        # the loader's rule applied to the export == the training quantizer applied to the trained weights
        np.testing.assert_array_equal(np.where(stored >= stored.mean(), 1, -1), np.where(w >= w.mean(), 1, -1), err_msg=name)
        assert abs(np.abs(stored).mean() - np.abs(w).mean()) <= np.abs(w).mean() * 2**-8, name


def test_resume_continues_at_the_right_step(corpus, tmp_path):
    straight = tmp_path / "straight"
    paused = tmp_path / "paused"
    args = ["train", "--corpus", str(corpus), "--preset", "micro", "--steps", "20", "--val-every", "5", "--seed", "3"]
    assert cli([*args, "--out", str(straight)]) == 0
    assert cli([*args, "--out", str(paused), "--stop-at", "8"]) == 0
    assert torch.load(paused / "checkpoint.pt", weights_only=False)["step"] == 8
    assert cli(["train", "--corpus", str(corpus), "--out", str(paused), "--resume"]) == 0
    resumed = torch.load(paused / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 20
    assert [r["step"] for r in log_rows(paused) if "loss" in r] == list(range(1, 21))
    # same batches, same optimizer state: bit-identical to the run that never stopped
    for name, value in torch.load(straight / "checkpoint.pt", weights_only=False)["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    assert [r["loss"] for r in log_rows(paused) if "loss" in r] == [r["loss"] for r in log_rows(straight) if "loss" in r]


def test_resume_refuses_changed_settings(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--corpus", str(corpus), "--out", str(out), "--preset", "micro", "--steps", "3"]) == 0
    assert cli(["train", "--corpus", str(corpus), "--out", str(out), "--preset", "micro", "--steps", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli(["train", "--corpus", str(corpus), "--out", str(out), "--resume", "--bits", "1"]) == 2
    assert "bits=1.58" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text(TEXT)
    assert cli(["train", "--corpus", str(other), "--out", str(out), "--resume", "--steps", "5"]) == 2
    assert "corpus differs" in capsys.readouterr().err


@pytest.mark.parametrize("problem, make, message", [
    ("missing", lambda d: d / "nope.txt", "no such corpus file"),
    ("binary", lambda d: (d / "b.txt", (d / "b.txt").write_bytes(b"\xff\xfe\x00bad"))[0], "not UTF-8"),
    ("empty folder", lambda d: (d / "empty", (d / "empty").mkdir())[0], "no *.txt"),
])
def test_bad_corpus_is_named(tmp_path, capsys, problem, make, message):
    path = make(tmp_path)
    assert cli(["train", "--corpus", str(path), "--out", str(tmp_path / "o"), "--preset", "micro", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_schedule_needs_an_end(corpus, tmp_path, capsys):
    assert cli(["train", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--preset", "micro"]) == 2
    assert "--steps or --minutes" in capsys.readouterr().err


def test_matches_transformers_bitnet(trained, tmp_path, monkeypatch):
    """The b1.58 export loaded by transformers' BitNetForCausalLM gives the training model's logits
    (runs where transformers is installed; CI has no transformers)."""
    monkeypatch.setenv("TORCHDYNAMO_DISABLE", "1")  # transformers' BitLinear is @torch.compile'd: 27 s otherwise
    transformers = pytest.importorskip("transformers")
    out = trained("1.58")
    from bitnet_wasm.train.export import export
    from bitnet_wasm.train.model import BitNetForCausalLM, ModelConfig

    state = torch.load(out / "checkpoint.pt", weights_only=False)
    model = BitNetForCausalLM(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    tokenizer = Tokenizer.from_str(state["tokenizer"])
    export(model, tokenizer, tmp_path, dtype="f32")
    hf = transformers.BitNetForCausalLM.from_pretrained(tmp_path, dtype=torch.float32, attn_implementation="eager").eval()
    ids = torch.tensor([tokenizer.encode(TEXT).ids[: model.config.max_position]])
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert ours.abs().max() > 1.0
    assert (ours - theirs).abs().max() < 1e-4


@pytest.mark.parametrize("out_features", [4, 8, 12, 1, 5, 10, 13])
def test_pack_matches_transformers(out_features):
    bitnet = pytest.importorskip("transformers.integrations.bitnet")
    from bitnet_wasm.train.export import pack_ternary

    codes = np.random.default_rng(out_features).integers(-1, 2, (out_features, 7)).astype(np.int8)
    theirs = bitnet.pack_weights(torch.from_numpy(codes.astype(np.int32))).numpy()
    np.testing.assert_array_equal(pack_ternary(codes), theirs)
    np.testing.assert_array_equal(unpack(pack_ternary(codes), out_features), codes)


@pytest.mark.parametrize("bits", ["1.58", "1"])
def test_straight_through_gradients(bits):
    """Forward on quantized weights and int8 activations; backward as if quantization were the identity."""
    from bitnet_wasm.train.quant import BitLinear, binarize, int8_absmax, ternarize

    torch.manual_seed(0)
    layer = BitLinear(16, 8, bits)
    x = torch.randn(5, 16, requires_grad=True)
    grad_out = torch.randn(5, 8)
    y = layer(x)
    y.backward(grad_out)
    w_q = {"1.58": ternarize, "1": binarize}[bits](layer.weight.detach())
    x_q = int8_absmax(x.detach())
    torch.testing.assert_close(y, x_q @ w_q.T)
    torch.testing.assert_close(layer.weight.grad, grad_out.T @ x_q)
    torch.testing.assert_close(x.grad, grad_out @ w_q)
    levels = (w_q / w_q.abs().max()).unique().tolist()
    assert levels == ([-1.0, 0.0, 1.0] if bits == "1.58" else [-1.0, 1.0])
