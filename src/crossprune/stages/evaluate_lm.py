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
from crossprune.stages.tasks import language_model

TAGS = ("A", "B")
CRITERIA = ("magnitude", "random", "wanda", "sparsegpt", "taylor", "snip", "fisher")  # those that score an LM


def sequences(split: Split, compute: Compute):
    """(x, y) batches of whole sequences, about eval.batch_size tokens each: an LM's logits are vocab-wide per token."""
    per_batch = max(1, compute.batch_size // split.sample_shape[0])
    for x, y in split.batches(per_batch):
        yield x.to(compute.device), y.to(compute.device)


@torch.inference_mode()
def measure(net: nn.Module, split: Split, compute: Compute) -> tuple[dict[str, float], dict[str, Tensor]]:
    """In one pass over the test split: `loss` (mean next-token cross-entropy, nats), `ppl` = exp(loss) and `acc`
    (top-1) over every token, `n_test` the token positions scored (sequences × positions); and the centred Gram
    matrix of each decoder block's output hidden states on at most eval.max_samples tokens (a seeded set, the same
    for every network), which is all linear CKA needs."""
    rows = compute.rows(len(split) * split.sample_shape[0])  # flat indices into [sequences × positions]
    names = {id(b): f"block.{i}" for i, b in enumerate(net.blocks)}
    kept: dict[str, list[Tensor]] = {}
    nll, right, tokens = 0.0, 0, 0

    def keep(block, inputs, output):
        hidden = (output[0] if isinstance(output, tuple) else output).flatten(0, 1)  # [batch × positions, width]
        mine = rows[(rows >= tokens) & (rows < tokens + len(hidden))] - tokens
        kept.setdefault(names[id(block)], []).append(hidden[mine.to(hidden.device)].float().cpu())

    hooks = [b.register_forward_hook(keep) for b in net.blocks]
    try:
        for x, y in sequences(split, compute):
            logits = net(x).float()  # [batch, vocab, positions]
            nll += float(F.cross_entropy(logits, y, reduction="sum"))
            right += int((logits.argmax(1) == y).sum())
            tokens += y.numel()
    finally:
        for h in hooks:
            h.remove()
    loss = nll / tokens
    grams = {n: centred_gram(torch.cat(parts)) for n, parts in kept.items()}
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "acc": right / tokens, "n_test": float(tokens)}, grams


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
            return LMReference({t: measure(dense, pair[t].test, compute)[1] for t in TAGS})

    def restore(self, dense: nn.Module, pair: Pair, tensors: dict, compute: Compute) -> LMReference:
        return self.reference(dense, pair, None, compute)

    def evaluate(self, net: nn.Module, classes: tuple, pair: Pair, probe: DictConfig, compute: Compute,
                 reference: LMReference | None = None) -> dict[str, float]:
        """`A/loss`, `A/ppl`, `A/acc` (next token), `A/n_test` (token positions scored) and `A/cka/block.<i>` against
        the dense reference; B alike."""
        metrics = {}
        with compute.on(net):
            for tag in TAGS:
                scores, grams = measure(net, pair[tag].test, compute)
                metrics |= {f"{tag}/{k}": v for k, v in scores.items()}
                if reference is not None:
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

    def check(self, cfg: DictConfig) -> None:
        """What a language model's run needs beyond the classifier's checks: one line for the first problem."""
        if not language_model(cfg):
            raise ConfigError(f"pair {cfg.pair.name} is text: it needs a language model (model=lm_tiny or "
                              f"model=hf_causal_lm model.path=<folder>), not {cfg.model._target_.rpartition('.')[2]}")
        if cfg.criterion.name not in CRITERIA:
            raise ConfigError(f"criterion {cfg.criterion.name} does not score language models: use one of {', '.join(CRITERIA)}")
        if cfg.prune.kind != "unstructured":
            raise ConfigError("language models are pruned unstructured or N:M (prune.pattern): use prune=unstructured")
        if cfg.finetune_b.head != "keep":
            raise ConfigError("a language model reads B through its own head (one vocabulary): use finetune_b.head=keep")
