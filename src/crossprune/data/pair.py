"""An A→B pair: the dataset a network is trained and scored on, and the one it is then used on."""

from dataclasses import dataclass

from hydra.utils import instantiate
from omegaconf import DictConfig

from crossprune.data.dataset import Dataset


@dataclass(frozen=True)
class Pair:
    name: str
    a: Dataset
    b: Dataset

    @property
    def shared_labels(self) -> bool:
        return self.a.classes == self.b.classes

    def __getitem__(self, which: str) -> Dataset:
        return {"A": self.a, "B": self.b}[which]


def build_pair(cfg: DictConfig) -> Pair:
    return Pair(cfg.name, instantiate(cfg.a), instantiate(cfg.b))
