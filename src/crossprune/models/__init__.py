"""Small networks that expose penultimate features and a replaceable `head`."""

from crossprune.models.cnn import CNN
from crossprune.models.cnn1d import CNN1d
from crossprune.models.lenet import LeNet5
from crossprune.models.mlp import MLP
from crossprune.models.vision import TorchvisionNet

__all__ = ["CNN", "CNN1d", "LeNet5", "MLP", "TorchvisionNet"]
