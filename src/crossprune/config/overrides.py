"""Checks of the command line itself, which the composed config no longer shows: a swept key given twice, a name that
its config file sets, an objective of a stage the job does not run (light: no torch, no mlflow)."""

from collections import Counter

from crossprune.config.errors import ConfigError

NAMED_BY_FILE = ("criterion.name", "control.name")  # what the report groups arms by: the chosen file's, not a label


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def check_overrides(overrides: list[str], swept: set[str] = frozenset(), stages_run: list[str] | None = None) -> None:
    """Raise ConfigError for a swept key (in `swept`) the command line sets twice (Hydra crosses both, and the last
    wins in every point: points that look different run the same), a name a config file sets, or an objective
    (`stages_run`: what the job runs) that would be NaN. A plain key set twice takes the last value, as in Hydra."""
    given = [o for o in overrides if not o.startswith("hydra")]
    twice = [k for k, n in Counter(key_of(o) for o in given).items() if n > 1 and k in swept]
    if twice:
        both = " and ".join(o for o in given if key_of(o) == twice[0])
        raise ConfigError(f"{twice[0]} is given twice ({both}): give it once, its values separated by commas")
    for o in given:
        if key_of(o) in NAMED_BY_FILE and "=" in o:
            group = key_of(o).partition(".")[0]
            raise ConfigError(f"{o}: {group}.name is the name of the {group} file, which says what runs: choose "
                              f"another with {group}=<file in conf/{group}>")
    objective = next((o.split("=", 1)[1] for o in given if key_of(o) == "objective"), None)
    stage = (objective or "").partition("/")[0]
    if objective and stages_run is not None and stage not in stages_run:
        raise ConfigError(f"objective={objective} reads {stage}, which this job does not run (it runs "
                          f"{', '.join(stages_run)}): add it to stages or name a metric of one of those")
