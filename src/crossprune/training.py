"""Training through the Lightning Trainer: a classifier module and a callback that logs each epoch to MLflow."""

import logging
import tempfile
from collections import defaultdict
import warnings
from collections.abc import Callable

import mlflow
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from crossprune import figures
from crossprune.data import Split

logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # no banner about absent GPUs on every fit
warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own deprecation, not ours to fix


class Classifier(pl.LightningModule):
    """Cross-entropy on the labels; with a `teacher`, mixed with Hinton et al.'s distillation loss by `distill.alpha`."""

    def __init__(self, net: nn.Module, optimizer: Callable, num_classes: int, teacher: nn.Module | None = None, distill=None):
        super().__init__()
        self.net, self.optimizer, self.distill = net, optimizer, distill
        self.teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # a list: not a submodule
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")

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
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.val_acc(self.net(x), y)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return self.optimizer(self.net.parameters())


class EpochMetrics(pl.Callback):
    """One batched MLflow call per epoch (per-step calls cost ms each on sqlite, more on a server)."""

    def __init__(self, first_step: int):
        self.first_step, self.history = first_step, defaultdict(list)

    def on_train_epoch_end(self, trainer, _):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        mlflow.log_metrics(metrics, step=self.first_step + trainer.current_epoch)
        for k, v in metrics.items():
            self.history[k].append(v)


def trainer_options(cfg: DictConfig) -> dict:
    """The Lightning Trainer options set under `trainer.*` (null: Lightning's default); the stages own the rest."""
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    return {k: v for k, v in options.items() if v is not None and k != "progress_bar"}


def fit(net: nn.Module, train: Split, val: Split, epochs: int, cfg: DictConfig, first_step: int = 0,
        teacher: nn.Module | None = None, distill: DictConfig | None = None) -> nn.Module:
    """Train `net` in place on `train` for `epochs`, validating on `val` each epoch; returns it on the CPU.

    Epoch metrics are logged at steps `first_step`, `first_step + 1`, … so successive fits in one run do not collide.
    """
    loader = lambda s, shuffle: DataLoader(TensorDataset(s.x, s.y), cfg.train.batch_size, shuffle=shuffle)  # noqa: E731
    module = Classifier(net, instantiate(cfg.train.optimizer), net.head.out_features, teacher, distill)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            max_epochs=epochs,
            enable_progress_bar=cfg.trainer.progress_bar,
            **trainer_options(cfg),
            callbacks=[epochs_logged := EpochMetrics(first_step)],
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        trainer.fit(module, loader(train, True), loader(val, False))
    figures.log(cfg, "curves" if first_step == 0 else f"curves_from_epoch_{first_step}", figures.curves, epochs_logged.history, first_step)
    return net.cpu()
