"""The pipeline's stages, each `run(ctx, *upstream) -> Result`, skipping work a FINISHED run already did, and what
they share: training, evaluation, scoring, figures, the device, seed streams."""

from crossprune.config.schema import ORDERS, STAGES  # noqa: F401  the stages' names, also read by config checks
