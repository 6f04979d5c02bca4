"""Masks, selection from scores, and structural removal."""

from crossprune.pruning.mask import Mask, plain_state_dict
from crossprune.pruning.prunable import prunable
from crossprune.pruning.select import SCOPES, select

__all__ = ["SCOPES", "Mask", "plain_state_dict", "prunable", "select"]
