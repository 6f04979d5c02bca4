"""The preflight composes a sweep's jobs once per job less its seed: the configs are those of composing each job."""

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from crossprune.cli import compose as composing
from crossprune.cli.compose import CONF, compose_jobs


def test_seeds_share_one_composition_and_get_the_same_configs(monkeypatch):
    shapes = [["pair=mnist1d_shift", "model=cnn1d", "pair.severity=0.5", "criterion=taylor"],
              ["pair=digits_split", "criterion=magnitude", "prune.sparsity=0.95", "data_seed=4"]]
    jobs = [[f"seed={s}", *shape] for shape in shapes for s in (0, 3, 11)] + [["prune.sparsity=0.5"], ["seed=2", "seed=5"]]
    calls = []
    real = composing.compose_job
    monkeypatch.setattr(composing, "compose_job", lambda config, overrides: calls.append(overrides) or real(config, overrides))
    with initialize_config_dir(CONF, version_base="1.3"):
        shared = compose_jobs("config", jobs)
        each = [compose("config", overrides=job) for job in jobs]
    assert len(calls) == 4  # one per shape, the seedless job, the one with two seeds (composed as given)
    for got, want in zip(shared, each, strict=True):
        assert OmegaConf.to_container(got, resolve=True) == OmegaConf.to_container(want, resolve=True)
    assert [c.seed for c in shared[:3]] == [0, 3, 11] and [c.score.seed for c in shared[:3]] == [0, 3, 11]
    assert [c.data_seed for c in shared[:3]] == [0, 3, 11] and {c.data_seed for c in shared[3:6]} == {4}
    assert shared[0].seed == 0 and shared[1] is not shared[0] and shared[0].pair is not shared[1].pair
