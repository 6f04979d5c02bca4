"""Research instruments: pure functions of tensors that compare networks, datasets and masks, returning floats."""

from crossprune.diagnostics.agreement import mask_iou, spearman
from crossprune.diagnostics.representation import centred_gram, effective_rank, gram_cka, linear_cka
from crossprune.diagnostics.shift import mmd2_rbf, mmd_rows, proxy_a_distance

__all__ = ["centred_gram", "effective_rank", "gram_cka", "linear_cka", "mask_iou", "mmd2_rbf", "mmd_rows", "proxy_a_distance", "spearman"]
