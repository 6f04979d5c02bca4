"""Pruning methods that change the weights they keep, beside score → select.

Each has `prune(net, params, batches, **options) -> Mask`: it decides the mask from the calibration batches, updates
`net`'s kept weights in place, and zeroes the pruned ones. A criterion file names one as `method:` instead of
`score:`; the score stage (the stage keyed by the calibration data) runs it, and the prune stage applies its mask.
"""
