"""Masks, selection from scores, and structural removal."""

from crossprune.config.schema import SCOPES
from crossprune.pruning.mask import Mask, plain_state_dict
from crossprune.pruning.prunable import prunable
from crossprune.pruning.select import select

__all__ = ["SCOPES", "Mask", "plain_state_dict", "prunable", "select"]
