"""A mask that empties a layer: refused unless prune.allow_layer_collapse (what the trained weights gave, not
the config alone, so it is found only once scores exist)."""

from omegaconf import DictConfig

from crossprune.config.errors import ConfigError
from crossprune.pruning.mask import Mask


class LayerCollapse(ConfigError):
    """A layer would lose every weight."""


def check_collapse(mask: Mask, p: DictConfig) -> None:
    collapsed = [n for n, s in mask.per_param_sparsity().items() if s == 1.0]
    if collapsed and not p.allow_layer_collapse:
        raise LayerCollapse(f"pruning removes every weight of {', '.join(collapsed)} (prune.allow_layer_collapse=true allows it)")
