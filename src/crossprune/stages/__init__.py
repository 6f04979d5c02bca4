"""The pipeline's stages, each `run(ctx, *upstream) -> Result`, skipping work a FINISHED run already did."""
