"""A sweep's jobs composed for the preflight: once per job less its seed (seeds share the rest), and a key that only
some options of a group have said in one line."""

import copy
from pathlib import Path

import yaml
from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from crossprune.config.errors import ConfigError, first_line, omegaconf_cause, schema_message

CONF = str(Path(__file__).resolve().parents[1] / "conf")  # links to the top-level conf/; a wheel holds a copy


def compose_jobs(config: str, jobs: list[list[str]]) -> list[DictConfig]:
    """Each job's config. Jobs that differ only in `seed=` are composed once and given their seed: a composition
    costs ~0.4 s, and ten seeds of a study made its preflight ten times longer (tests/test_compose.py: the same
    configs as composing each)."""
    parser, bases, out = OverridesParser.create(), {}, []
    for overrides in jobs:
        seeds = [o for o in overrides if o.startswith("seed=")]
        rest = tuple(o for o in overrides if not o.startswith("seed="))
        if len(seeds) != 1:
            out.append(compose_job(config, list(overrides)))
            continue
        if rest not in bases:
            bases[rest] = compose_job(config, [*rest, seeds[0]])
        cfg = copy.deepcopy(bases[rest])
        cfg.seed = parser.parse_override(seeds[0]).value()  # the schema types it, as composing would
        out.append(cfg)
    return out


def compose_job(config: str, overrides: list[str]) -> DictConfig:
    """One job's config; a key its group's option lacks (pair.max_train on a pair without it) says which option."""
    try:
        return compose(config, overrides=overrides)
    except ConfigCompositionException as e:
        key = first_line(e).removeprefix("Could not override '").partition("'")[0]
        group, _, rest = key.partition(".")
        if not first_line(e).startswith("Could not override") or not rest or schema_message(omegaconf_cause(e)):
            raise  # composing() says it (a typed group such as prune names its nearest key)
        others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
        try:
            choice = compose(config, overrides=others, return_hydra_config=True).hydra.runtime.choices.get(group)
        except Exception:
            choice = None
        if choice is None:
            raise
        given = next(o for o in overrides if o.split("=", 1)[0].lstrip("+~") == key)
        having = [f.stem for f in sorted(Path(CONF, group).glob("*.yaml")) if has_key(f, rest)]
        where = (f"; {group}s with it: {', '.join(having)} (give {key} only with those, e.g. one study grid per {group})"
                 if having else f", nor does any file in conf/{group}/")
        raise ConfigError(f"{given}: {group} {choice} has no key {rest}{where}") from e


def has_key(file: Path, dotted: str) -> bool:
    """Whether the yaml `file` sets the dotted key `dotted`."""
    node = yaml.safe_load(file.read_text()) or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
