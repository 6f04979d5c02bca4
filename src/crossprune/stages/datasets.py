"""The pair's training data as MLflow datasets of the open run (its Datasets panel)."""

import os
import random
import time
import warnings

from crossprune.data import Split


def log_datasets(pair) -> None:
    """A's and B's training splits as MLflow datasets (name, digest, shape) in the open run's Datasets panel; data
    read from files (Fashion-MNIST's) with their folder as source and each file's sha256 as a tag of the input; a
    streamed split (too large for memory) as its shapes and the data's own digest, never read whole."""
    import mlflow.data  # noqa: PLC0415 (only a run needs these)
    import numpy as np  # noqa: PLC0415
    from mlflow.data.code_dataset_source import CodeDatasetSource  # noqa: PLC0415
    from mlflow.data.dataset_source_registry import resolve_dataset_source  # noqa: PLC0415
    from mlflow.data.meta_dataset import MetaDataset  # noqa: PLC0415
    from mlflow.tracking.context import registry  # noqa: PLC0415
    from mlflow.types import Schema, TensorSpec  # noqa: PLC0415

    for role in "AB":
        data, name = pair[role], f"{role}: {pair[role].name}"
        source, tags = None, {os.path.basename(path): sha256 for path, sha256 in data.files}  # each file's sha256
        if data.files:  # read from files (Fashion-MNIST's): the source is their folder
            with warnings.catch_warnings():  # MLflow registers two alike sources for local paths and warns it took one
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(os.path.commonpath([os.path.dirname(p) for p, _ in data.files]))
        if isinstance(data.train, Split):
            inputs = mlflow.data.from_numpy(data.train.x.numpy(), targets=data.train.y.numpy(), name=name, source=source)
        else:
            shapes = Schema([TensorSpec(np.dtype("float32"), (len(data.train), *data.input_shape), "x"),
                             TensorSpec(np.dtype("int64"), (len(data.train),), "y")])
            inputs = MetaDataset(CodeDatasetSource(registry.resolve_tags()), name=name, digest=data.digest, schema=shapes)
        log_input(inputs, context=f"{role} train", tags=tags or None)


def log_input(dataset, attempts: int = 5, **kwargs) -> None:
    """mlflow.log_input, tried again when it fails: MLflow looks a dataset up, then inserts it, so two processes that
    log the same new dataset at once race, and the loser's insert breaks the unique key (sqlite3.IntegrityError);
    tried again, it finds the winner's row."""
    import mlflow  # noqa: PLC0415

    for attempt in range(1, attempts + 1):
        try:
            return mlflow.log_input(dataset, **kwargs)
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt + random.random() * 0.1)  # apart, so the two do not meet again
