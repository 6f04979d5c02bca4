"""Configs that cannot run are refused before training, with one ConfigError naming the problem."""

import io
import urllib.request
from types import SimpleNamespace

import pytest

from crossprune.cli.checks import validate
from crossprune.config import writable
from crossprune.config.errors import ConfigError
from crossprune.pruning.collapse import LayerCollapse
from crossprune.store import tracking

BAD = {
    "layerwise collapse": (["prune.include_bias=true", "prune.scope=layerwise", "prune.sparsity=0.99"], "every weight"),
    "severity above 1": (["pair=digits_permute", "pair.severity=1.5"], "severity must be in"),
    "negative severity": (["pair=digits_rotate", "pair.severity=-0.5"], "severity must be in"),
    "synflow in rounds": (["criterion=synflow", "prune.rounds=3"], "prune.rounds=1"),
    "unreachable cap": (["prune.max_layer_sparsity=0.5"], "cannot reach"),
    "unknown layer": (["prune.scope=layers", "prune.layers=[nope]"], "prune.layers"),
    "keep head on split": (["finetune_b.head=keep"], "share labels"),
    "structured control": (["prune.kind=structured", "control=dense"], "control=none"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_configs_raise_one_config_error(make_cfg, name):
    overrides, message = BAD[name]
    with pytest.raises(ConfigError, match=message) as error:
        validate(make_cfg(*overrides))
    assert "\n" not in str(error.value)


def test_a_collapse_is_allowed_when_asked(make_cfg):
    validate(make_cfg("prune.include_bias=true", "prune.scope=layerwise", "prune.sparsity=0.99", "prune.allow_layer_collapse=true"))


def test_layer_collapse_is_a_config_error():
    assert issubclass(LayerCollapse, ConfigError)


def test_structured_by_kind_alone_is_accepted(make_cfg):
    """Issue 3's command form `prune.kind=structured model=cnn` needs no other override."""
    validate(make_cfg("prune.kind=structured", "prune.sparsity=0.5", "model=cnn"))


def test_stage_keys_change_with_the_code(monkeypatch):
    """An edited criterion or default must not reuse runs made before the edit."""
    before = tracking.stage_key("score", {"a": 1})
    assert before == tracking.stage_key("score", {"a": 1})
    monkeypatch.setattr(tracking, "code_hash", lambda: "edited")
    assert tracking.stage_key("score", {"a": 1}) != before


def test_every_store_mlflow_takes_passes_and_a_server_is_asked_once(tmp_path, monkeypatch):
    """sqlite in a folder still to be made, databricks with a workspace and a server; nothing is created. (A database
    server is asked on its port and needs its driver: tests/test_bad_input.py has one down and one without a driver.)"""
    asked = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: asked.append(getattr(url, "full_url", url)) or io.BytesIO(b"OK"))
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    writable.check_server.cache_clear()
    uris = [f"sqlite:///{tmp_path}/new/mlflow.db", "sqlite:///:memory:", "databricks", "https://mlflow.example.org",
            "https://mlflow.example.org"]
    for uri in uris:
        writable.check_store(SimpleNamespace(uri=uri))
    assert asked == ["https://mlflow.example.org/health"]  # a sweep's jobs ask once
    assert list(tmp_path.iterdir()) == []
