"""What a pair's networks are measured by: the one switch between classifiers and language models.

A task fixes the dense train_a network's instruments (`reference`, `restore` from a cached run), measures a network
on A and B (`evaluate`), records what the instruments must beat (`instruments`) and checks what a config needs
(`check`). A pair names its task (`pair.task`, a `_target_`); without one it is a classification pair.
"""

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from crossprune.config.errors import ConfigError
from crossprune.models.lm import CausalLM
from crossprune.stages.evaluate import Reference, evaluate, instrument_references


class Classification:
    """A classifier: its head, linear probes, the heads fixed on the dense network, and CKA (stages/evaluate.py)."""

    labelled = True  # its classes are labels that every one should have training samples of

    def reference(self, dense, pair, probe, compute) -> Reference:
        return Reference.fit(dense, pair, probe, compute)

    def restore(self, dense, pair, tensors, compute) -> Reference:
        return Reference.of(dense, pair, Reference.heads_from(tensors), compute)

    def evaluate(self, net, classes, pair, probe, compute, reference=None) -> dict[str, float]:
        return evaluate(net, classes, pair, probe, compute, reference)

    def instruments(self, dense, untrained, pair, probe, compute) -> dict[str, float]:
        return instrument_references(dense, untrained, pair, probe, compute)

    def check(self, cfg: DictConfig) -> None:
        if language_model(cfg):
            raise ConfigError(f"model {cfg.model._target_.rpartition('.')[2]} is a language model: it needs a text pair "
                              f"(pair=lm_code_prose, or pair=text pair.a.paths=[...] pair.b.paths=[...])")


def language_model(cfg: DictConfig) -> bool:
    """Whether model._target_ names a causal language model (models/lm.py); a target that cannot be found is not
    (building the model says why)."""
    try:
        return issubclass(get_class(cfg.model._target_), CausalLM)
    except Exception:
        return False


def task_of(cfg: DictConfig):
    """The pair's task (`pair.task`), or Classification."""
    return instantiate(cfg.pair.task) if cfg.pair.get("task") else Classification()
