"""What every stage shares: the config, the data pair, the dense reference, networks built from the config, and
the stage cache."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from crossprune.data import Pair
from crossprune.pruning import Mask, plain_state_dict
from crossprune.stages.compute import Compute, machine
from crossprune.stages.evaluate import Reference
from crossprune.stages.seeds import role_seed
from crossprune.stages.tasks import task_of
from crossprune.stages.training import trainer_options
from crossprune.store import locks, names, tracking
from crossprune.store.tracking import Result, StageRun


@dataclass
class Context:
    cfg: DictConfig
    pair: Pair
    workdir: Path  # where stage artifacts are fetched to, for the length of one pipeline
    reference: Reference | None = None  # the dense train_a network's instruments, once train_a has run
    task: object = None  # how networks are measured (stages/tasks.py): the pair's, set from the config
    held: dict = field(default_factory=dict)  # stage key -> this process's claim on it, from cached() to track()
    depends: dict = field(default_factory=dict)  # stage key -> the config it depends on (Context.key): its run's params

    def __post_init__(self):
        self.task = self.task or task_of(self.cfg)

    def seed(self, role: str) -> int:
        """Seed torch, numpy and Python for one role; each role draws its own stream from cfg.seed."""
        seed = role_seed(self.cfg.seed, role)
        pl.seed_everything(seed, workers=True, verbose=False)
        return seed

    @property
    def scored_classes(self) -> tuple:
        """The label space of the head of the network that is scored and pruned: A's, or B's when the dense
        network is fine-tuned on B first."""
        return self.pair.b.classes if self.cfg.order == "finetune_then_prune" else self.pair.a.classes

    def new_net(self, classes: tuple, structure: dict | None = None, fresh: bool = False) -> nn.Module:
        """A new network for `classes` from model.weights where set, or a `fresh` init (scratch baselines, the
        untrained twin) whatever the config; `structure` overrides widths for a structurally pruned one."""
        shape = {**(structure or {}), "num_classes": len(classes)}
        if fresh and self.cfg.model.get("weights"):
            shape["weights"] = None
        return instantiate(self.cfg.model, input_shape=self.pair.a.input_shape, **shape)

    def load_net(self, result: Result, classes: tuple) -> nn.Module:
        """The network a stage saved (masks folded in, smaller widths if it was structurally pruned)."""
        net = self.new_net(classes, result.structure())
        net.load_state_dict(result.load("model"))
        return net

    def plain(self, net: nn.Module, classes: tuple, structure: dict | None = None) -> nn.Module:
        """`net` as a user loads it: a new network of its shape holding its weights, masks folded in."""
        plain = self.new_net(classes, structure)
        plain.load_state_dict(plain_state_dict(net))
        return plain.eval()

    def load_mask(self, result: Result) -> Mask | None:
        return Mask.load(result.files / "masks.safetensors") if result.has("masks") else None

    @property
    def training(self) -> "Slice":
        """What a training stage's result depends on beyond its epochs: the optimisation, the augmentation and the
        Trainer options."""
        augment = self.cfg.pair.get("augment")
        return Slice({"train": OmegaConf.to_container(self.cfg.train, resolve=True), "trainer": trainer_options(self.cfg),
                      "pair.augment": OmegaConf.to_container(augment, resolve=True) if augment else None,
                      "compute.threads": self.cfg.compute.threads})  # the last bits of every result depend on them

    def of(self, *paths: str, values: dict | None = None) -> "Slice":
        """Config values by their dotted path (and `values` a stage derived, by the path they stand for), as a part
        of a stage key that names what it holds."""
        return Slice({p: OmegaConf.to_container(v, resolve=True) if isinstance(v := OmegaConf.select(self.cfg, p), DictConfig) else v
                      for p in paths} | (values or {}))

    def key(self, stage: str, *depends_on) -> str:
        """The stage key of `depends_on`; the config among them (config nodes, Slices, the upstream stages' own, an
        earlier key's) is what the stage's run logs as its params. The first part that names a key wins."""
        key = tracking.stage_key(stage, *[d.key if isinstance(d, Result) else d for d in depends_on])
        depends = OmegaConf.create()
        for part in reversed(depends_on):  # merged last to first: where two parts disagree, the first one wins
            for path, value in self.named(part).items():  # (prune: the scoring it prunes by, not the one on B)
                OmegaConf.update(depends, path, value, merge=True, force_add=True)
        self.depends[key] = OmegaConf.to_container(depends)
        return key

    def named(self, part) -> dict:
        """The config a key part names, by dotted path: nothing for a digest, a number or None."""
        if isinstance(part, Result):
            return OmegaConf.to_container(OmegaConf.load(part.files / "config.yaml"))
        if isinstance(part, DictConfig):
            return {part._get_full_key(None): OmegaConf.to_container(part, resolve=True)}
        if isinstance(part, Slice):
            return {p: v for p, v in part.items() if v is not None}
        return self.depends.get(part, {}) if isinstance(part, str) else {}

    def cached(self, stage: str, key: str, tag: str = tracking.KEY_TAG) -> Result | None:
        """The Result of a FINISHED run whose `tag` is `key` (the stage key by default), unless the cache is off.
        On a miss for a stage key (cache on) this process claims the key, waiting while another process computes it (then its
        run is the hit); the claim is held until track() ends."""
        hit = self.lookup(stage, key, tag)
        if hit or tag != tracking.KEY_TAG or not self.cfg.cache:  # cache=false: nothing to share, so nothing to claim
            return hit
        self.held[key] = locks.claim(key, self.cfg.tracking.uri, self.cfg.tracking.experiment)
        if hit := self.lookup(stage, key, tag):
            self.held.pop(key).release()
        return hit

    def lookup(self, stage: str, key: str, tag: str) -> Result | None:
        while run_id := tracking.finished_run(key, tag) if self.cfg.cache else None:
            if hit := tracking.fetch(stage, key, run_id, self.workdir):
                return hit  # a damaged run is marked FAILED by fetch: the next newest one is tried
        return None

    @contextmanager
    def track(self, stage: str, key: str, data: str | None = None) -> Iterator[StageRun]:
        """An open StageRun to fill (`data`: what it scored on, for its name); once the body succeeds its `result`
        holds what was logged. The key's claim ends with it, whatever happens."""
        try:
            name = names.stage_name(stage, self.cfg, data)
            tracking.step(name)
            with tracking.stage_run(stage, key, self.depends.get(key, {}), self.workdir, name,
                                    self.cfg.tracking.get("system_metrics", False)) as run:
                run.tag(**machine())
                yield run
        finally:
            self.release(key)

    def release(self, *keys: str) -> None:
        """Give up this process's claims on `keys` (all of them by default)."""
        for key in keys or list(self.held):
            if claim := self.held.pop(key, None):
                claim.release()

    @property
    def compute(self) -> Compute:
        """Where scoring, probes and evaluation run (the Trainer's device), in what batches, on how many rows."""
        return Compute.of(self.cfg)

    def evaluate(self, net: nn.Module, classes: tuple) -> dict[str, float]:
        """Every test-split metric of `net` (head label space `classes`), measured against the dense reference."""
        return self.task.evaluate(net, classes, self.pair, self.cfg.eval.probe, self.compute, self.reference)


class Slice(dict):
    """Config values by dotted path: a stage key part that says which keys it holds (Context.of, Context.training)."""
