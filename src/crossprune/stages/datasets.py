"""The pair's training data as MLflow datasets of the open run (its Datasets panel)."""

from crossprune.data import Split


def log_datasets(pair) -> None:
    """A's and B's training splits as MLflow datasets (name, digest, shape) in the open run's Datasets panel; a
    streamed split (too large for memory) as its shapes and the data's own digest, never read whole."""
    import mlflow.data  # noqa: PLC0415 (only a run needs these)
    import numpy as np  # noqa: PLC0415
    from mlflow.data.code_dataset_source import CodeDatasetSource  # noqa: PLC0415
    from mlflow.data.meta_dataset import MetaDataset  # noqa: PLC0415
    from mlflow.tracking.context import registry  # noqa: PLC0415
    from mlflow.types import Schema, TensorSpec  # noqa: PLC0415

    for role in "AB":
        data, name = pair[role], f"{role}: {pair[role].name}"
        if isinstance(data.train, Split):
            inputs = mlflow.data.from_numpy(data.train.x.numpy(), targets=data.train.y.numpy(), name=name)
        else:
            shapes = Schema([TensorSpec(np.dtype("float32"), (len(data.train), *data.input_shape), "x"),
                             TensorSpec(np.dtype("int64"), (len(data.train),), "y")])
            inputs = MetaDataset(CodeDatasetSource(registry.resolve_tags()), name=name, digest=data.digest, schema=shapes)
        mlflow.log_input(inputs, context=f"{role} train")
