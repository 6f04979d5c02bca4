"""Training through the Lightning Trainer: a classifier module and a callback that logs each epoch to MLflow."""

import functools
import logging
import math
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from inspect import signature

import mlflow
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import TQDMProgressBar
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from crossprune.data import Split
from crossprune.stages import figures
from crossprune.stages.compute import device_of

logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # no banner about absent GPUs on every fit
warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own deprecation, not ours to fix


class Classifier(pl.LightningModule):
    """Cross-entropy on the labels; with a `teacher`, mixed with Hinton et al.'s distillation loss by `distill.alpha`."""

    def __init__(self, net: nn.Module, optimizer: Callable, num_classes: int, teacher: nn.Module | None = None, distill=None,
                 scheduler: Callable | None = None, channels_last: bool = False):
        super().__init__()
        self.net, self.optimizer, self.scheduler, self.distill = net, optimizer, scheduler, distill
        self.channels_last = channels_last  # NHWC batches (and weights, set by fit): what tensor cores' convolutions want
        self.teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # a list: not a submodule
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.epoch = {}  # summed here, logged once per epoch (self.log per step costs ms); set at each epoch's start

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if self.teacher:
            t, alpha = self.distill.temperature, self.distill.alpha
            soft = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(self.teacher[0].to(x.device)(x) / t, 1),
                            reduction="batchmean", log_target=True)
            loss = (1 - alpha) * loss + alpha * t * t * soft  # t² keeps the soft gradients' scale (Hinton et al. 2015)
        if not torch.isfinite(loss):  # diverged: every later step would only train on NaN
            lr = getattr(self.optimizer, "keywords", {}).get("lr", "?")
            raise FloatingPointError(f"the loss became {loss.item()} at epoch {self.current_epoch + 1} of "
                                     f"{self.trainer.max_epochs}, batch {batch_idx + 1}: train.optimizer.lr={lr} is likely too high")
        self.epoch["loss"] += loss.detach() * len(y)  # a dict: setting a Module attribute per step is slow
        self.epoch["samples"] += len(y)
        return loss

    def epoch_metrics(self) -> dict[str, float]:
        """`train/loss` (the mean over the epoch's samples) and `val/acc` (where validation ran)."""
        loss = {"train/loss": float(self.epoch["loss"] / max(self.epoch["samples"], 1)), "train/lr": self.epoch["lr"]}
        return loss | ({"val/acc": self.epoch["val/acc"]} if "val/acc" in self.epoch else {})

    def on_train_epoch_start(self):  # the rate this epoch trains at (a schedule steps before the epoch-end hooks)
        self.epoch = {"loss": 0.0, "samples": 0, "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}

    def on_after_batch_transfer(self, batch, _):
        x, y = batch
        return (x.to(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x), y

    def validation_step(self, batch, _):
        x, y = batch
        self.val_acc.update(self.net(x), y)

    def on_validation_epoch_end(self):
        self.epoch["val/acc"] = float(self.val_acc.compute())  # read by EpochMetrics, not self.log: works barebones too
        self.val_acc.reset()

    def configure_optimizers(self):
        optimizer = self.optimizer(self.net.parameters())
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler(optimizer)}  # stepped once per epoch


class Batches:
    """A split's (x, y) batches: sliced from its tensors in memory (a DataLoader gathers and collates sample by
    sample, which cost more than the small models' steps), or read by a streamed split's DataLoader workers. Shuffled
    from torch's seeded global generator, as a DataLoader's RandomSampler is, so both kinds see the same order.
    `augment`, a per-sample transform, applies to each training sample."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool, augment: Callable | None = None):
        self.split, self.batch_size, self.shuffle, self.augment = split, batch_size, shuffle, augment

    def __len__(self) -> int:
        n = len(self.split)
        return math.ceil(n / self.batch_size) - (self.shuffle and n > 1 and n % self.batch_size == 1)

    def __iter__(self):
        n = len(self.split)
        order = torch.randperm(n) if self.shuffle else None
        if self.shuffle and n > 1 and n % self.batch_size == 1:  # a last training batch of one: BatchNorm cannot use it
            order = order[:-1]
        for batch, y in self.split.batches(self.batch_size, order):
            if self.augment is not None:
                batch = torch.stack([self.augment(sample) for sample in batch])
            yield batch, y


class EpochMetrics(pl.Callback):
    """Each epoch's metrics, sent to MLflow in one batch every `every` seconds and at the end (a call costs tens
    of ms on sqlite, more on a server: once per short epoch, it cost as much as the training)."""

    def __init__(self, first_step: int, every: float = 10.0):
        self.first_step, self.every, self.history, self.pending, self.sent = first_step, every, defaultdict(list), [], time.monotonic()

    def on_train_epoch_end(self, trainer, module):
        metrics = module.epoch_metrics()
        now, step = int(time.time() * 1000), self.first_step + trainer.current_epoch
        self.pending += [Metric(k, v, now, step) for k, v in metrics.items()]
        for k, v in metrics.items():
            self.history[k].append(v)
        if time.monotonic() - self.sent >= self.every:
            self.flush()

    def on_fit_end(self, trainer, module):
        self.flush()

    def on_exception(self, trainer, module, exception):  # a diverged fit keeps the epochs it logged
        self.flush()

    def flush(self) -> None:
        if self.pending:
            MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=self.pending)
        self.pending, self.sent = [], time.monotonic()


class StageBar(TQDMProgressBar):
    """Lightning's bar, named by the stage it trains for: `finetune_b · epoch 3/10`."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.stage} · epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


def trainer_options(cfg: DictConfig) -> dict:
    """The Lightning Trainer options set under `trainer.*` (null: Lightning's default); the stages own the rest."""
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    return {k: v for k, v in options.items() if v is not None and k != "progress_bar"}


def fit(net: nn.Module, train: Split, val: Split, epochs: int, cfg: DictConfig, first_step: int = 0,
        teacher: nn.Module | None = None, distill: DictConfig | None = None) -> nn.Module:
    """Train `net` in place on `train` for `epochs`, validating on `val` each epoch; returns it on the CPU.

    Epoch metrics are logged at steps `first_step`, `first_step + 1`, … so successive fits in one run do not collide.
    """
    channels_last = device_of(cfg.trainer).type == "cuda" and any(isinstance(m, nn.Conv2d) for m in net.modules())
    if channels_last:
        net.to(memory_format=torch.channels_last)
    module = Classifier(net, instantiate(cfg.train.optimizer), net.head.out_features, teacher, distill, scheduler(cfg, epochs),
                        channels_last)
    augment = instantiate(cfg.pair.augment) if cfg.pair.get("augment") else None
    stage = (run := mlflow.active_run()) and run.data.tags.get("crossprune.stage") or "training"  # the bar's name
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            max_epochs=epochs,
            enable_progress_bar=cfg.trainer.progress_bar,
            **trainer_options(cfg),
            callbacks=[epochs_logged := EpochMetrics(first_step), *([StageBar(stage)] if cfg.trainer.progress_bar else [])],
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        shuffle = not cfg.trainer.get("overfit_batches")  # overfitting means the same few batches every epoch
        trainer.fit(module, Batches(train, cfg.train.batch_size, shuffle, augment), Batches(val, cfg.train.batch_size, False))
    figures.log(cfg, "curves" if first_step == 0 else f"curves_from_epoch_{first_step}", figures.curves, epochs_logged.history, first_step)
    return net.cpu().to(memory_format=torch.contiguous_format)


def scheduler(cfg: DictConfig, epochs: int) -> Callable | None:
    """train.scheduler (a partial torch.optim.lr_scheduler class, stepped once per epoch) with its length, T_max or
    total_iters, set to this stage's epochs unless given: one config serves stages of different budgets."""
    if not cfg.train.get("scheduler"):
        return None
    partial_ = instantiate(cfg.train.scheduler)
    takes = signature(partial_.func).parameters
    return functools.partial(partial_, **{k: epochs for k in ("T_max", "total_iters") if k in takes and k not in partial_.keywords})
