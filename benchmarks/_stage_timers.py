"""Where a crossprune pipeline's wall time goes: wall-clock timers around what its stages call, each category's
own time (a timed call inside another counts for its own category only, not twice), on the pipeline's thread."""

import threading
import time
from collections import defaultdict

from matplotlib.figure import Figure

from crossprune.stages import figures, prune, score, scoring, tasks, train_a, train_b

from mlflow_share import entry_points  # every MLflow entry point crossprune can reach, as mlflow_share.py times them

# (owner, attribute, category): the stages call these by the names their modules imported.
TIMED = [
    *[(m, "fit", "training") for m in (train_a, train_b, prune)],
    *[(m, "compute_scores", "scoring") for m in (score, prune)],
    (score, "prune_with_method", "scoring"),
    *[(tasks.Classification, f, "evaluation and probes") for f in ("reference", "restore", "evaluate", "instruments")],
    *[(m, "fit_head", "evaluation and probes") for m in (scoring, prune)],  # a head fitted for scoring B is a probe
    (prune, "agreement", "evaluation and probes"),
    (figures, "log", "figures"),
    (Figure, "savefig", "figures"),  # log_figure renders inside MLflow: drawing, not tracking
]


class StageTimers:
    """While entered, `seconds[category]` gathers the own time of every call of TIMED and of MLflow's entry points
    made on the entering thread (a claim's lease renewal runs on another and is not waited for)."""

    def __init__(self):
        self.seconds, self.stack, self.patched = defaultdict(float), [], []

    def wrap(self, category: str, f):
        def wrapper(*args, **kwargs):
            if threading.get_ident() != self.thread:
                return f(*args, **kwargs)
            self.stack.append(0.0)  # the time of timed calls inside this one
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                wall, inner = time.perf_counter() - start, self.stack.pop()
                self.seconds[category] += wall - inner
                if self.stack:
                    self.stack[-1] += wall
        return wrapper

    def __enter__(self):
        self.thread, seen = threading.get_ident(), {}
        points = [(o, a, c) for o, a, c in TIMED] + [(o, a, "mlflow") for o, a, _ in entry_points()]
        for owner, attr, category in points:
            original = vars(owner)[attr]
            wrapped = seen.setdefault(id(original), self.wrap(category, original))  # a re-export: the same wrapper
            self.patched.append((owner, attr, original))
            setattr(owner, attr, wrapped)
        return self

    def __exit__(self, *_):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()
