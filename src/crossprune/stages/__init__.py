"""The pipeline's stages, each `run(ctx, *upstream) -> Result`, skipping work a FINISHED run already did."""

STAGES = ("train_a", "teacher_b", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse")
ORDERS = ("prune_then_finetune", "finetune_then_prune")
