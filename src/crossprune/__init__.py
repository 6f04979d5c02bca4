"""crossprune: what goes wrong when a network trained on dataset A is pruned and used on dataset B."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crossprune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from crossprune import torchvision_compat

torchvision_compat.install()  # before anything imports torchvision (torchmetrics and Lightning do)
