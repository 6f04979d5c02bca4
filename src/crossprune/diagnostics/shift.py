"""Dataset-shift diagnostics between two samples of features: RBF MMD² and the proxy A-distance."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from crossprune.diagnostics._features import flat

MMD_SAMPLES = 2000


def mmd_rows(n: int, max_samples: int = MMD_SAMPLES, seed: int = 0) -> Tensor:
    """The rows mmd2_rbf keeps of `n`: all, or `max_samples` drawn without replacement by a generator seeded afresh
    per call. Taking these rows first gives mmd2_rbf the same numbers without the others."""
    if n <= max_samples:
        return torch.arange(n)
    # A fresh generator per sample: identical inputs pick identical rows, so MMD(X, X) stays exactly 0.
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples]


def _rows(x: Tensor, max_samples: int, seed: int) -> Tensor:
    return x if len(x) <= max_samples else x[mmd_rows(len(x), max_samples, seed)]


def mmd2_rbf(x: Tensor, y: Tensor, max_samples: int = MMD_SAMPLES, seed: int = 0) -> float:
    """Biased (V-statistic) squared MMD with an RBF kernel whose bandwidth is the pooled median distance."""
    x, y = _rows(flat(x), max_samples, seed), _rows(flat(y), max_samples, seed)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).square()
    off = d2[torch.triu_indices(len(z), len(z), offset=1).unbind()]
    off = off[off > 0]  # duplicates would pull the median to 0
    if off.numel() == 0:
        return 0.0
    k = torch.exp(-d2 / (2 * off.sqrt().median().square()))
    n = len(x)
    value = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    # The V-statistic is a squared norm, so only rounding can make it negative.
    return max(float(value), 0.0)


def proxy_a_distance(x: Tensor, y: Tensor, seed: int = 0) -> float:
    """Proxy A-distance 2(1 − 2ε) (Ben-David et al.), ε the held-out error of a linear x-vs-y classifier."""
    features = torch.cat([flat(x), flat(y)]).numpy()
    domain = np.r_[np.zeros(len(x)), np.ones(len(y))]
    f_train, f_test, d_train, d_test = train_test_split(
        features, domain, test_size=0.5, stratify=domain, random_state=seed
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(f_train, d_train)
    error = 1.0 - clf.score(f_test, d_test)
    # Worse than chance is chance: clipping ε at 0.5 keeps the distance in [0, 2].
    return 2.0 * (1.0 - 2.0 * min(error, 0.5))
