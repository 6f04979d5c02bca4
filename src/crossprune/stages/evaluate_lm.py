"""How a causal language model is measured: next-token loss, perplexity and accuracy on each domain's test text,
and CKA of each decoder block's hidden states against the dense train_a model.

A language model reads A and B through its one head (the vocabulary), so the classifier's instruments (probes,
heads fitted on frozen features, feature ranks) have nothing to measure here and are not computed.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from crossprune.config.errors import ConfigError
from crossprune.data import Pair, Split
from crossprune.diagnostics import centred_gram, gram_cka, mmd2_rbf
from crossprune.stages.compute import Compute

TAGS = ("A", "B")
CRITERIA = ("magnitude", "random", "wanda", "sparsegpt", "taylor", "snip", "fisher")  # those that score an LM


def sequences(split: Split, compute: Compute):
    """(x, y) batches of whole sequences, about eval.batch_size tokens each: an LM's logits are vocab-wide per token."""
    per_batch = max(1, compute.batch_size // split.sample_shape[0])
    for x, y in split.batches(per_batch):
        yield x.to(compute.device), y.to(compute.device)


@torch.inference_mode()
def next_token(net: nn.Module, split: Split, compute: Compute) -> dict[str, float]:
    """`loss` (mean next-token cross-entropy, nats), `ppl` = exp(loss) and `acc` (top-1) over every test token."""
    nll, right, tokens = 0.0, 0, 0
    for x, y in sequences(split, compute):
        logits = net(x).float()  # [batch, vocab, positions]
        nll += float(F.cross_entropy(logits, y, reduction="sum"))
        right += int((logits.argmax(1) == y).sum())
        tokens += y.numel()
    loss = nll / tokens
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "acc": right / tokens}


def token_rows(split: Split, compute: Compute) -> Tensor:
    """The test tokens CKA compares (flat indices into [sequences × positions]): at most eval.max_samples, seeded."""
    return compute.rows(len(split) * split.sample_shape[0])


@torch.inference_mode()
def block_grams(net: nn.Module, split: Split, compute: Compute) -> dict[str, Tensor]:
    """The centred Gram matrix of every decoder block's output hidden states on the tokens of `token_rows`."""
    rows, names = token_rows(split, compute), {id(b): f"block.{i}" for i, b in enumerate(net.blocks)}
    kept: dict[str, list[Tensor]] = {}
    start = 0

    def keep(block, inputs, output):
        hidden = (output[0] if isinstance(output, tuple) else output).flatten(0, 1)  # [batch × positions, width]
        mine = rows[(rows >= start) & (rows < start + len(hidden))] - start
        kept.setdefault(names[id(block)], []).append(hidden[mine.to(hidden.device)].float().cpu())

    hooks = [b.register_forward_hook(keep) for b in net.blocks]
    try:
        for x, _ in sequences(split, compute):
            net.features(x)
            start += x.numel()
    finally:
        for h in hooks:
            h.remove()
    return {n: centred_gram(torch.cat(parts)) for n, parts in kept.items()}


@dataclass
class LMReference:
    """The dense train_a LM's block Gram matrices on each test split: recomputed from its weights, nothing saved."""

    grams: dict[str, dict[str, Tensor]]

    def tensors(self) -> dict[str, Tensor]:
        return {}


class LanguageModelling:
    """The task object of text pairs (`pair.task`): what train_a fixes, what every stage logs, what a config needs."""

    labelled = False  # its classes are the vocabulary: a token the text never holds is no missing label

    def reference(self, dense: nn.Module, pair: Pair, probe: DictConfig, compute: Compute) -> LMReference:
        with compute.on(dense):
            return LMReference({t: block_grams(dense, pair[t].test, compute) for t in TAGS})

    def restore(self, dense: nn.Module, pair: Pair, tensors: dict, compute: Compute) -> LMReference:
        return self.reference(dense, pair, None, compute)

    def evaluate(self, net: nn.Module, classes: tuple, pair: Pair, probe: DictConfig, compute: Compute,
                 reference: LMReference | None = None) -> dict[str, float]:
        """`A/loss`, `A/ppl`, `A/acc` (next token) and `A/cka/block.<i>` against the dense reference; B alike."""
        metrics = {}
        with compute.on(net):
            for tag in TAGS:
                test = pair[tag].test
                metrics |= {f"{tag}/{k}": v for k, v in next_token(net, test, compute).items()}
                if reference is not None:
                    grams = block_grams(net, test, compute)
                    metrics |= {f"{tag}/cka/{b}": gram_cka(dense, grams[b]) for b, dense in reference.grams[tag].items()}
        return metrics

    def instruments(self, dense: nn.Module, untrained: nn.Module, pair: Pair, probe: DictConfig,
                    compute: Compute) -> dict[str, float]:
        """`chance`: the test rate of the most frequent next token (what always guessing it scores); and
        `dissimilarity/mmd` between the dense model's mean hidden states of A's and B's test sequences."""
        metrics = {f"{t}/chance": float(pair[t].test.y.flatten().bincount().max() / pair[t].test.y.numel()) for t in TAGS}
        with compute.on(dense):
            pooled = [torch.cat([dense.features(x).mean(1).float().cpu() for x, _ in sequences(pair[t].test, compute)])
                      for t in TAGS]
        return metrics | {"dissimilarity/mmd": mmd2_rbf(*pooled)}

    def check(self, cfg: DictConfig, net: nn.Module) -> None:
        """What a language model's run needs beyond the classifier's checks: one line for the first problem."""
        if not hasattr(net, "blocks"):
            raise ConfigError(f"pair {cfg.pair.name} is text: it needs a language model (model=lm_tiny or "
                              f"model=hf_causal_lm model.path=<folder>), not {cfg.model._target_.rpartition('.')[2]}")
        if cfg.criterion.name not in CRITERIA:
            raise ConfigError(f"criterion {cfg.criterion.name} does not score language models: use one of {', '.join(CRITERIA)}")
        if cfg.prune.kind != "unstructured":
            raise ConfigError("language models are pruned unstructured or N:M (prune.pattern): use prune=unstructured")
        if cfg.finetune_b.head != "keep":
            raise ConfigError("a language model reads B through its own head (one vocabulary): use finetune_b.head=keep")
