"""Language models (issue 21) on a tiny corpus the tests write: every stage end to end, SparseGPT against Wanda and
magnitude on a real layer, N:M masks, the text readers and the configs refused."""

import gzip
import inspect
import json
import math
import tempfile
import textwrap
from types import SimpleNamespace

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from crossprune.cli.checks import validate
from crossprune.config.errors import ConfigError
from crossprune.criteria import Batch
from crossprune.data import build_pair
from crossprune.data.text import ByteTokenizer, text
from crossprune.pruning import select
from crossprune.pruning.methods.sparsegpt import hessian, reconstruct

STAGES = ("train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse")
LM_METRICS = ("A/ppl", "B/ppl", "A/loss", "B/loss", "A/acc", "B/acc")
TINY = ["model=lm_tiny", "pair.seqlen=32", "model.config.hidden_size=32", "model.config.intermediate_size=64",
        "model.config.num_attention_heads=2", "model.config.num_key_value_heads=2", "train_a.epochs=2",
        "finetune_b.epochs=1", "train.batch_size=16", "score.nsamples=16", "score.batch_size=8", "eval.max_samples=256"]


def write_corpus(root) -> tuple[str, str]:
    """A: Python source of a few standard modules; B: English prose, their docstrings."""
    import calendar, csv, fractions, shlex, string  # noqa: E401, PLC0415

    modules = (textwrap, string, shlex, calendar, fractions, csv)
    (root / "a").mkdir()
    for m in modules:
        (root / "a" / f"{m.__name__}.py").write_text(inspect.getsource(m)[:12_000])
    prose = [inspect.getdoc(f) for m in modules for _, f in inspect.getmembers(m, callable) if inspect.getdoc(f)]
    (root / "b.txt").write_text("\n\n".join(p for p in prose if " the " in p))
    return str(root / "a"), str(root / "b.txt")


def tensors(cfg, result, name: str) -> dict[str, torch.Tensor]:
    """A safetensors artifact of a stage run, read back from the store (a Result's own files last one pipeline)."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_file(MlflowClient(cfg.tracking.uri).download_artifacts(result.run_id, f"{name}.safetensors", tmp))


def overrides(paths: tuple[str, str], *more: str) -> list[str]:
    return ["pair=text", f"pair.a.paths=[{paths[0]}]", f"pair.b.paths=[{paths[1]}]", *TINY, *more]


@pytest.fixture(scope="module")
def lm(tmp_path_factory, compose_at, run_pipeline):
    """One store: every stage with wanda at 50%, then SparseGPT 2:4 on the same train_a (a cache hit)."""
    root = tmp_path_factory.mktemp("lm")
    paths = write_corpus(root)
    wanda_cfg = compose_at(root, *overrides(paths, "criterion=wanda", "prune.sparsity=0.5"))
    wanda = run_pipeline(wanda_cfg)
    sgpt_cfg = compose_at(root, *overrides(paths, "criterion=sparsegpt", "prune.sparsity=0.5", "prune.pattern=2:4",
                                           "stages=[train_a,score,prune]"))
    return SimpleNamespace(root=root, paths=paths, cfg=wanda_cfg, wanda=wanda, sgpt_cfg=sgpt_cfg, sgpt=run_pipeline(sgpt_cfg))


def test_every_stage_logs_perplexity_loss_and_accuracy_on_both_domains(lm):
    """Every stage logs A/B ppl, loss and next-token accuracy, ppl = exp(loss); no classifier instruments."""
    assert set(lm.wanda) == set(STAGES)
    for stage, result in [*lm.wanda.items(), *lm.sgpt.items()]:
        m = result.metrics
        assert all(k in m for k in LM_METRICS), (stage, sorted(m))
        for d in "AB":
            assert m[f"{d}/ppl"] == pytest.approx(math.exp(m[f"{d}/loss"]), rel=1e-9)
            assert 0 < m[f"{d}/acc"] < 1 and 1 < m[f"{d}/ppl"] < 256  # better than uniform over the 256 bytes
        assert not any("probe" in k or "fixed_head" in k for k in m), stage
    dense = lm.wanda["train_a"].metrics
    assert dense["A/loss"] < dense["B/loss"]  # trained on A's code, it reads A best
    assert all(dense[f"{d}/cka/block.{i}"] == pytest.approx(1.0) for d in "AB" for i in (0, 1))
    assert {"A/chance", "B/chance", "dissimilarity/mmd"} <= set(dense)


def test_wanda_prunes_half_of_every_row_and_compares_a_and_b_masks(lm):
    prune = lm.wanda["prune"]
    masks = tensors(lm.cfg, prune, "masks")
    assert prune.metrics["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert all(((m == 0).sum(1) == m.shape[1] // 2).all() for m in masks.values())  # the paper's per-row cut
    assert 0 < prune.metrics["mask_iou_AB"] < 1  # calibrated on A and on B, the masks differ
    assert prune.metrics["B/loss"] > lm.wanda["train_a"].metrics["B/loss"]  # pruning costs


def test_finetune_b_holds_the_mask_and_lowers_b_loss(lm):
    masks, tuned = (tensors(lm.cfg, lm.wanda[s], n) for s, n in (("prune", "masks"), ("finetune_b", "model")))
    assert all(torch.all(tuned[n][m == 0] == 0) for n, m in masks.items())
    assert lm.wanda["finetune_b"].metrics["B/loss"] < lm.wanda["prune"].metrics["B/loss"]
    sparse = tensors(lm.cfg, lm.wanda["scratch_b_sparse"], "model")
    assert all(torch.all(sparse[n][m == 0] == 0) for n, m in masks.items())


def test_sparsegpt_2_4_keeps_two_of_every_four_and_updates_the_kept_weights(lm):
    assert lm.sgpt["train_a"].cached  # the same train_a as wanda's
    dense, pruned, masks = (tensors(lm.cfg, lm.sgpt[s], n) for s, n in (("train_a", "model"), ("prune", "model"),
                                                                         ("prune", "masks")))
    assert len(masks) == 14  # 7 Linear layers in each of 2 decoder blocks
    for name, m in masks.items():
        assert torch.all((m.reshape(len(m), -1, 4) == 0).sum(2) == 2), name
        assert torch.all(pruned[name][m == 0] == 0)
        kept = m == 1
        assert not torch.allclose(pruned[name][kept], dense[name][kept])  # reconstructed, not only masked
    assert 0 < lm.sgpt["prune"].metrics["mask_iou_AB"] <= 1


def dense_lm(lm) -> tuple[torch.nn.Module, list]:
    """The trained dense model (eval mode) and A's calibration batches."""
    from crossprune.stages.context import Context
    from crossprune.stages.scoring import score_batches

    ctx = Context(lm.cfg, build_pair(lm.cfg.pair), lm.root)
    net = ctx.new_net(ctx.pair.a.classes)
    net.load_state_dict(tensors(lm.cfg, lm.wanda["train_a"], "model"))
    return net.eval(), list(score_batches(lm.cfg, ctx.pair, "A"))


def layer_inputs(lm, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained dense model's weight `name` and that layer's inputs on A's calibration batches."""
    net, batches = dense_lm(lm)
    layer, xs = net.get_submodule(name.rpartition(".")[0]), []
    hook = layer.register_forward_pre_hook(lambda m, i: xs.append(i[0].reshape(-1, m.in_features)))
    with torch.no_grad():
        for b in batches:
            net(b.x)
    hook.remove()
    return layer.weight.detach().clone(), torch.cat(xs)


def test_sequential_wanda_calibrates_each_block_through_n_m_masks(lm, compose_at, run_pipeline):
    """Block 1 is scored on inputs through block 0 pruned 2:4 (not by a row cut of the same 50%), and the prune
    stage's masks then have exactly 2 zeros in every group of 4 of every row."""
    from crossprune.criteria import wanda

    net, batches = dense_lm(lm)
    names = sorted(tensors(lm.cfg, lm.wanda["prune"], "masks"))
    params = {n: net.get_parameter(n) for n in names}
    n_m, row = (wanda.score(net, params, batches, None, 0.5, "row", pattern=p) for p in ("2:4", None))
    first, second = [n for n in names if ".layers.0." in n], [n for n in names if ".layers.1." in n]
    assert all(torch.equal(n_m[n], row[n]) for n in first)  # nothing before block 0: the dense net's inputs
    cut = select({n: n_m[n] for n in first}, 0.5, "row", pattern="2:4")
    assert all(torch.all((cut[n].reshape(len(cut[n]), -1, 4) == 0).sum(2) == 2) for n in first)
    with torch.no_grad():
        for n in first:
            params[n].mul_(cut[n])
    owners = [n.rpartition(".")[0] for n in second]
    want = wanda.weigh(net, {n: params[n] for n in second}, wanda.input_norms(net, owners, batches))
    assert all(torch.allclose(n_m[n], want[n]) for n in second)
    assert not all(torch.allclose(row[n], want[n]) for n in second)  # a row cut would have calibrated otherwise
    cfg = compose_at(lm.root, *overrides(lm.paths, "criterion=wanda", "prune.sparsity=0.5", "prune.pattern=2:4",
                                         "stages=[train_a,score,prune]"))
    done = run_pipeline(cfg)
    assert done["train_a"].cached and done["prune"].metrics["sparsity"] == pytest.approx(0.5, abs=1e-4)
    for name, m in tensors(lm.cfg, done["prune"], "masks").items():
        assert torch.all((m.reshape(len(m), -1, 4) == 0).sum(2) == 2), name


@pytest.mark.parametrize("name", ["body.layers.0.mlp.down_proj.weight", "body.layers.1.self_attn.o_proj.weight"])
def test_sparsegpt_reconstructs_a_layer_better_than_wanda_and_magnitude(lm, name):
    """‖WX − ŴX‖² at 50% on the same layer and calibration data: SparseGPT below Wanda and magnitude."""
    w, x = layer_inputs(lm, name)
    error = lambda pruned: float(((x @ w.T - x @ pruned.T) ** 2).sum())  # noqa: E731
    h = 2 * x.T @ x / len(x)
    sgpt, keep = reconstruct(w, h, 0.5)
    wanda = w * select({"w": w.abs() * x.norm(dim=0)}, 0.5, "row")["w"]
    magnitude = w * select({"w": w.abs()}, 0.5, "layerwise")["w"]
    assert keep.mean() == pytest.approx(0.5, abs=1e-3)
    assert error(sgpt) < error(wanda) and error(sgpt) < error(magnitude)


def test_sparsegpt_at_zero_sparsity_changes_nothing(lm):
    w, x = layer_inputs(lm, "body.layers.0.self_attn.q_proj.weight")
    same, keep = reconstruct(w, 2 * x.T @ x / len(x), 0.0)
    assert torch.equal(same, w) and torch.all(keep == 1)


def test_sparsegpt_is_sequential_obs_computed_directly():
    """Against the OBS update written out with explicit inverses: prune column i, spread its error over the later
    columns by [H_{i:,i:}]⁻¹ (the Cholesky form must give the same weights and mask)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 24, generator=g) * torch.linspace(0.2, 3, 24) + torch.randn(500, 1, generator=g)
    w, h = torch.randn(6, 24, generator=g), 2 * x.T @ x / 500
    fast, keep = reconstruct(w, h, 0.5, damp=0.0, blocksize=24)
    slow = w.double().clone()
    for i in range(24):
        inv = torch.linalg.inv(h.double()[i:, i:])
        err = (slow[:, i] * (1 - keep[:, i].double())) / inv[0, 0]
        slow[:, i:] -= err[:, None] * inv[0][None, :]
    assert torch.allclose(fast.double(), slow, atol=1e-4)


@pytest.mark.parametrize("pattern,n,m", [("2:4", 2, 4), ("4:8", 4, 8), ("1:4", 1, 4)])
def test_n_m_masks_prune_exactly_n_of_every_m_lowest_first(pattern, n, m):
    scores = {"a.weight": torch.randn(16, 32), "b.weight": torch.randn(8, 2, 8)}  # a conv's taps count in its row
    mask = select(scores, n / m, "global", pattern=pattern)
    for name, s in scores.items():
        groups, kept = s.reshape(len(s), -1, m), mask[name].reshape(len(s), -1, m)
        assert torch.all((kept == 0).sum(2) == n)
        pruned_top = torch.where(kept == 0, groups, -torch.inf).amax(2)
        assert torch.all(pruned_top <= torch.where(kept == 1, groups, torch.inf).amin(2))  # the lowest go
    assert mask.sparsity() == pytest.approx(n / m)


def test_text_reads_files_folders_jsonl_and_gzip_into_seeded_blocks(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.txt").write_text("alpha beta gamma " * 40)
    (tmp_path / "d" / "skip.md").write_text("never read " * 40)
    (tmp_path / "two.jsonl").write_text("\n".join(json.dumps({"text": f"line {i} of delta"}) for i in range(60)))
    with gzip.open(tmp_path / "three.gz", "wt") as f:
        f.write("epsilon zeta " * 60)
    paths = [str(tmp_path / "d"), str(tmp_path / "two.jsonl"), str(tmp_path / "three.gz")]
    data = text("t", paths, ByteTokenizer(), seqlen=16, glob="*.txt", split_seed=3)
    assert data.input_shape == [16] and len(data.classes) == 256
    assert torch.equal(data.train.x[:, 1:], data.train.y[:, :-1])  # y is x shifted by one token
    seen = b"".join(bytes(r.tolist()) for s in (data.train, data.val, data.test) for r in s.x).decode()
    assert "never" not in seen and "delta" in seen and "epsilon" in seen and "alpha" in seen
    again, other = (text("t", paths, ByteTokenizer(), seqlen=16, glob="*.txt", split_seed=s) for s in (3, 4))
    assert torch.equal(again.test.x, data.test.x) and not torch.equal(other.test.x, data.test.x)


def test_the_prose_corpus_is_read_from_the_set_up_cache_when_debian_path_lacks_it(tmp_path, monkeypatch):
    """Without root the set-up unpacks dict-devil into the cache; the pair's path (Debian's) still finds it there."""
    from crossprune.data import text_setup

    monkeypatch.setattr(text_setup, "PROSE", tmp_path / "usr" / "devil.dict.dz")  # as on a machine without the package
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="no file or folder"):
        text("b", [str(text_setup.PROSE)], ByteTokenizer(), seqlen=16)
    text_setup.cache_file().parent.mkdir(parents=True)
    with gzip.open(text_setup.cache_file(), "wt") as f:
        f.write("DEVIL, n. The author of all our woes. " * 40)
    data = text("b", [str(text_setup.PROSE)], ByteTokenizer(), seqlen=16)
    assert b"woes" in b"".join(bytes(r.tolist()) for r in data.train.x)
    assert text_setup.damage(text_setup.cache_file()).endswith("not the dictionary's ~380 KB")  # 1.5 KB: not it


@pytest.mark.parametrize("extra,says", [
    (["criterion=wanda", "prune.pattern=3:4", "prune.sparsity=0.5"], "set prune.sparsity=0.75"),
    (["criterion=wanda", "prune.pattern=4:2"], "N:M with 0 < N < M"),
    (["criterion=sparsegpt", "prune.rounds=2"], "is a pruning method"),
    (["criterion=grasp"], "does not score language models"),
    (["model=mlp"], "needs a language model"),
    (["score.seqlen=64"], "at most the data's 32 tokens"),
    (["pair.b.paths=[/nowhere/b.txt]"], "no file or folder /nowhere/b.txt"),
])
def test_lm_configs_that_cannot_run_are_one_line_errors(tmp_path, make_cfg, extra, says):
    paths = write_corpus(tmp_path)
    chosen = overrides(paths, *extra)
    if "model=mlp" in extra:  # no lm_tiny keys to set on an MLP
        chosen = [o for o in chosen if not o.startswith("model.")]
    with pytest.raises(ConfigError, match=says.replace(".", r"\.").replace("(", r"\(")):
        validate(make_cfg(*chosen))


def test_hessian_counts_every_token_of_the_calibration_batches():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 5, 4)
    [h] = hessian([layer], layer, [Batch(x, None, "A")])
    flat = x.reshape(-1, 4)
    assert torch.allclose(h, 2 * flat.T @ flat / 10)


def save_checkpoint(folder, corpus: str) -> None:
    """A tiny GPT-2 (Conv1D layers, head tied to the embeddings) and a byte-level BPE tokenizer trained here, saved
    as a Hugging Face checkpoint folder: config.json, model.safetensors, tokenizer.json."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([corpus], vocab_size=300, min_frequency=2)
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=bpe.get_vocab_size(), n_embd=32, n_layer=2, n_head=2, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(folder)


def test_a_local_hf_checkpoint_is_read_as_it_is_and_pruned(tmp_path, make_cfg, run_pipeline):
    """model=hf_causal_lm: its tokenizer reads the text, train_a.epochs=0 keeps its weights (the loss is HF's own on
    the same tokens), SparseGPT prunes its Conv1D layers (as nn.Linear) and leaves the tied head whole."""
    from transformers import AutoModelForCausalLM

    paths = write_corpus(tmp_path)
    save_checkpoint(tmp_path / "ckpt", (tmp_path / "b.txt").read_text())
    cfg = make_cfg("pair=text", f"pair.a.paths=[{paths[0]}]", f"pair.b.paths=[{paths[1]}]", "pair.seqlen=32",
                   "model=hf_causal_lm", f"model.path={tmp_path / 'ckpt'}", "train_a.epochs=0", "criterion=sparsegpt",
                   "prune.sparsity=0.5", "score.nsamples=8", "stages=[train_a,score,prune]")
    pair = validate(cfg)
    done = run_pipeline(cfg)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").eval()
    ids = torch.cat([pair.b.test.x, pair.b.test.y[:, -1:]], 1)  # HF shifts the labels itself
    with torch.no_grad():
        own = hf(input_ids=ids, labels=ids).loss
    assert done["train_a"].metrics["B/loss"] == pytest.approx(float(own), rel=1e-4)
    masks = tensors(cfg, done["prune"], "masks")
    assert sorted(masks) == sorted(f"body.h.{i}.{m}.weight" for i in (0, 1) for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert done["prune"].metrics["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert done["prune"].metrics["B/loss"] > done["train_a"].metrics["B/loss"]


def test_calibration_takes_nsamples_sequences_of_seqlen_tokens_and_mixes_by_rows(lm):
    """score.nsamples sequences cut to score.seqlen tokens; a mix of one batch is still half A, half B."""
    from crossprune.stages.scoring import score_batches

    pair = build_pair(lm.cfg.pair)
    cfg = lm.cfg.copy()
    cfg.score.nsamples, cfg.score.batch_size, cfg.score.seqlen = 12, 16, 20
    batches = {d: score_batches(cfg, pair, d) for d in ("A", "B", "mix")}
    assert [(b.head, tuple(b.x.shape)) for b in batches["mix"]] == [("A", (6, 20)), ("B", (6, 20))]
    assert torch.equal(batches["mix"][0].x, batches["A"][0].x[:6]) and torch.equal(batches["mix"][1].x, batches["B"][0].x[6:])
    assert all(torch.equal(b.x[:, 1:], b.y[:, :-1]) for b in batches["B"])
