"""params.yaml (DVC's parameters) as Hydra overrides: every key set, not null, becomes `key=value`."""

from pathlib import Path

import yaml

from interpreter import ROOT

PARAMS = ROOT / "params.yaml"


def load(path: Path = PARAMS) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def hydra_overrides(params: dict, prefix: str = "") -> list[str]:
    """Nested keys flattened with dots; null means "not set" (conf/'s or the study's own value)."""
    out = []
    for key, value in params.items():
        if isinstance(value, dict):
            out += hydra_overrides(value, f"{prefix}{key}.")
        elif value is not None:
            out.append(f"{prefix}{key}={text(value)}")
    return out


def text(value) -> str:
    """A value as Hydra's override grammar reads it; a string goes as written, so '0,1' sweeps as on the CLI."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(text(v) for v in value) + "]"
    return str(value)


def quoted(value: str) -> str:
    """A string Hydra takes whole (spaces, brackets, '=' and ',' included)."""
    return "'" + value.replace("'", "\\'") + "'"
