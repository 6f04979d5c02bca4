"""Bad input, as a user types it: one line on stderr naming the key, exit status 2, nothing run and nothing written.

The cases call the commands' main() in this process (a subprocess costs seconds of imports each); one test runs the
real console script to show it behaves the same."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from crossprune.cli import app
from crossprune.cli import report as report_cli
from crossprune.config.errors import redact

ROOT = os.geteuid() == 0  # root writes through any mode bits: an unwritable folder is one under /proc
GPU = torch.cuda.is_available()

# id: (arguments, what the one line says). {tmp} is the test's own folder (the working directory), {locked} a folder
# there that cannot be written.
BAD = {
    "unknown_pair": (["pair=nope"], "Could not find 'pair/nope' (options: cifar10_corrupt, digits_permute"),
    "unknown_criterion": (["criterion=nope"], "Could not find 'criterion/nope'"),
    "sparsity_1": (["prune.sparsity=1.0"], "prune.sparsity must be in [0, 1), got 1.0"),
    "sparsity_negative": (["prune.sparsity=-0.1"], "prune.sparsity must be in [0, 1), got -0.1"),
    "model_too_deep": (["model=cnn", "model.channels=[8,8,8,8]"], "model CNN does not fit pair digits_split (model.channels="),
    "sweep_last_bad": (["-m", "prune.sparsity=0.5,1.5"], "prune.sparsity must be in [0, 1), got 1.5"),
    "layer_collapse": (["prune.include_bias=true", "prune.scope=layerwise", "prune.sparsity=0.999"], "prune.allow_layer_collapse=true"),
    "stages_not_a_list": (["stages=prune"], "stages must be a list, e.g. stages=[prune]"),
    "stage_unknown": (["stages=[prune,nope]"], "stages must be a non-empty list of"),
    "study_point_bad": (["-m", "study=capacity", "pair.severity=7", "pair.num_samples=600"], "severity must be in [0, 1], got 7"),
    "ordered_on_a": (["order=finetune_then_prune", "criterion=taylor"], "set score.data=B"),
    "hidden_empty": (["model.hidden=[]"], "model.hidden=[] leaves the model no layer to prune"),
    "hidden_zero": (["model.hidden=[0]"], "model.hidden must hold widths >= 1"),
    "kernel_zero": (["model=cnn", "model.kernel_size=0"], "model CNN does not fit pair digits_split (model.channels=[16, 32], model.kernel_size=0)"),
    "model_option_unknown": (["+model.foo=1"], "model.foo=1): Error in call to target 'crossprune.models.mlp.MLP'"),
    "criterion_option_unknown": (["+criterion.score.bogus=1"], "criterion.score of criterion magnitude cannot be built: got an unexpected keyword argument 'bogus'"),
    "taylor_variant": (["criterion=taylor", "criterion.variant=nope"], "variant must be one of molchanov, torch_pruning, abs_mean, got 'nope'"),
    "wanda_sequential_global": (["criterion=wanda", "prune.scope=global"], "criterion.sequential=false for one shot; got prune.scope=global"),
    "wanda_sequential_text": (["criterion=wanda", "criterion.sequential=maybe"], "criterion.sequential must be true or false, got 'maybe'"),
    "probe_C_negative": (["eval.probe.C=-1"], "eval.probe.C must be > 0"),
    "resnet_width_zero": (["model=resnet18", "model.width=0"], "model.width must be a number > 0 scaling every channel count, got 0"),
    "resnet_stem_not_bool": (["model=resnet18", "model.cifar_stem=maybe"], "model.cifar_stem must be true or false, got 'maybe'"),
    "eval_max_samples_tiny": (["eval.max_samples=3"], "eval.max_samples must be null (all rows) or at least 10, got 3"),
    "scheduler_unknown": (["train.scheduler={{_target_:torch.optim.lr_scheduler.Nope,_partial_:true}}"], "train.scheduler cannot be built: Error locating target 'torch.optim.lr_scheduler.Nope'"),
    "scheduler_bad_option": (["train.scheduler={{_target_:torch.optim.lr_scheduler.StepLR,_partial_:true}}"], "train.scheduler cannot be built:"),
    "augment_bad": (["+pair.augment={{_target_:torchvision.transforms.v2.RandomCrop,size:64}}"], "pair.augment cannot be built or applied to one sample of A:"),
    "probe_max_iter_0": (["eval.probe.max_iter=0"], "eval.probe.max_iter must be >= 1"),
    "batch_size_0": (["train.batch_size=0"], "train.batch_size must be >= 1, got 0"),
    "epochs_float": (["train_a.epochs=1.5"], "train_a.epochs must be an integer, got 1.5"),
    "epochs_text": (["train_a.epochs=abc"], "train_a.epochs must be an integer, got 'abc'"),
    "seed_text": (["seed=abc"], "seed must be an integer, got 'abc'"),
    "seed_negative": (["seed=-1"], "seed must be an integer >= 0, got -1"),
    "alpha_text": (["finetune_b.distill.alpha=x"], "finetune_b.distill.alpha must be a number"),
    "cache_not_bool": (["cache=maybe"], "cache must be true or false"),
    "score_data": (["score.data=C"], "score.data must be A, B or mix, got C"),
    "score_mix": (["score.mix=2"], "score.mix must be in [0, 1]"),
    "scope_unknown": (["prune.scope=nope"], "prune.scope must be one of global, layerwise, row, layers"),
    "layers_not_a_list": (["prune.layers=layers.0"], "prune.layers must be a list, e.g. prune.layers=[layers.0]"),
    "prune_key_added": (["+prune.sparsty=0.5"], "unknown key prune.sparsty (did you mean prune.sparsity?)"),
    "prune_key_misspelt": (["prune.sparsty=0.5"], "unknown key prune.sparsty (did you mean prune.sparsity?)"),
    "top_key_added": (["+nonsense=1"], "unknown key nonsense"),
    "typed_key_added": (["+train.momentum=0.9"], "unknown key train.momentum"),
    "override_syntax": (["prune.sparsity=["], "prune.sparsity=[: "),
    "optimizer_lr": (["train.optimizer.lr=-1"], "train.optimizer cannot be built: Invalid learning rate: -1"),
    "optimizer_option_unknown": (["+train.optimizer.foo=1"], "train.optimizer cannot be built: Adam.__init__() got an unexpected keyword argument 'foo'"),
    "optimizer_class": (["train.optimizer._target_=torch.optim.Adamm"], "train.optimizer cannot be built: Error locating target 'torch.optim.Adamm'"),
    "accelerator_gpu": (["trainer.accelerator=gpu"], "trainer.accelerator=gpu: no GPU on this machine (torch.cuda.is_available() is False)"),
    "accelerator_unknown": (["trainer.accelerator=tpu"], "trainer.accelerator must be one of auto, cpu, gpu, cuda, mps, got tpu"),
    "devices_text": (["trainer.devices=abc"], "trainer.devices must be a count (1), a list of device ids ([0, 1]) or auto"),
    "devices_ids_on_cpu": (["trainer.devices=[0,1]"], "trainer.devices on cpu is a count of processes"),
    "deterministic_text": (["trainer.deterministic=warn"], "trainer.deterministic must be true or false"),
    "summary_in_proc": (["summary=/proc/nope/s.json"], "summary=/proc/nope/s.json cannot be written"),
    "summary_under_a_file": (["summary=/etc/passwd/s.json"], "summary=/etc/passwd/s.json cannot be written: /etc/passwd is a file"),
    "summary_is_a_folder": (["summary={tmp}"], "is a folder, not a file"),
    "report_out_in_proc": (["report.out=/proc/x"], "report.out=/proc/x cannot be written"),
    "store_plain_path": (["tracking.uri={tmp}/store"], "is a folder, and MLflow keeps runs in a database: use tracking.uri=sqlite:///"),
    "store_relative_folder": (["tracking.uri=mlruns"], "tracking.uri=mlruns is a folder"),
    "store_under_a_file": (["tracking.uri=sqlite:////etc/passwd/mlflow.db"], "tracking.uri=sqlite:////etc/passwd/mlflow.db: /etc/passwd is a file"),
    "store_unwritable": (["tracking.uri=sqlite:///{locked}/mlflow.db"], "tracking.uri=sqlite:///"),
    "store_server_down": (["tracking.uri=http://127.0.0.1:9"], "tracking.uri=http://127.0.0.1:9 does not answer"),
    "store_scheme": (["tracking.uri=ftp://host/x"], "tracking.uri=ftp://host/x: MLflow has no store for ftp://"),
    "experiment_empty": (["tracking.experiment="], "tracking.experiment must be a name"),
    "help_unknown_key": (["modl=cnn", "--help"], "unknown key modl (did you mean model?)"),
    "help_unknown_option": (["model=cn", "--help"], "Could not find 'model/cn' (options: cnn, cnn1d, "),
    # Issue 23: tracebacks before, now one line.
    "synflow_rounds_0": (["criterion=synflow", "criterion.score.rounds=0"], "criterion.score.rounds must be an integer >= 1, got 0"),
    "synflow_rounds_negative": (["criterion=synflow", "criterion.score.rounds=-3"], "criterion.score.rounds must be an integer >= 1, got -3"),
    "criterion_score_removed": (["~criterion.score"], "criterion.score is missing: criterion magnitude needs"),
    "control_apply_removed": (["~control.apply"], "control.apply is missing: control none needs it"),
    "gradient_clip_nan": (["trainer.gradient_clip_val=nan"], "trainer.gradient_clip_val must be a number >= 0 (or null: no clipping), got nan"),
    "accumulate_0": (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be >= 1"),
    "artifacts_unwritable": (["tracking.artifacts={locked}/artifacts"], "tracking.artifacts={locked}/artifacts cannot be written"),
    "store_postgres_down": (["tracking.uri=postgresql://crossprune@127.0.0.1:9/runs"], "tracking.uri=postgresql://crossprune@127.0.0.1:9/runs does not answer"),
    "store_mysql_no_driver": (["tracking.uri=mysql://crossprune@127.0.0.1:{listening}/runs"], "the mysql driver is not installed (No module named 'MySQLdb')"),
    "store_databricks": (["tracking.uri=databricks"], "tracking.uri=databricks needs a Databricks workspace: set DATABRICKS_HOST"),
    "store_not_a_database": (["tracking.uri=sqlite:///{text}"], "is not an sqlite database"),
    "summary_on_a_full_device": (["summary=/dev/full"], "summary=/dev/full is a device or a pipe, not a file"),
    "run_dir_in_proc": (["hydra.run.dir=/proc/crossprune"], "hydra.run.dir=/proc/crossprune cannot be written"),
    "sweep_dir_in_proc": (["-m", "hydra.sweep.dir=/proc/crossprune", "prune.sparsity=0.5,0.6"], "hydra.sweep.dir=/proc/crossprune cannot be written"),
    "experiment_100k": ([f"tracking.experiment={'x' * 100_000}"], "tracking.experiment must be at most 249 characters, got 100000"),
    # Issue 23: accepted silently while wrong before.
    "class_absent": (["pair.a.classes=[0,1,2,3,99]"], "pair.a.classes=[0, 1, 2, 3, 99]: digits_0-4 has no training samples of class [99]"),
    "control_renamed": (["control.name=nope"], "control.name=nope: control.name is the name of the control file"),
    "layers_nested": (["prune.layers=[[layers.0]]"], "prune.layers must be a flat list of layer names, e.g. prune.layers=[layers.0], got [['layers.0']]"),
    "sweep_key_twice": (["-m", "prune.sparsity=0.5,0.6", "prune.sparsity=0.7"], "prune.sparsity is given twice (prune.sparsity=0.5,0.6 and prune.sparsity=0.7)"),
    "objective_not_run": (["objective=teacher_b/B/acc"], "objective=teacher_b/B/acc reads teacher_b, which this job does not run"),
    "distill_temperature_tiny": (["finetune_b.distill.temperature=1e-30"], "finetune_b.distill.temperature must be >= 0.1"),
    # Issue 23: found mid-run or never before.
    "data_free_text": (["criterion.data_free=maybe"], "criterion.data_free must be true or false, got 'maybe'"),
    "config_dir_sweep_point_bad": (["-m", "--config-dir", "{confdir}", "prune.sparsity=0.5,1.5"], "prune.sparsity must be in [0, 1), got 1.5"),
    "devices_2_on_cpu": (["trainer.devices=2"], "trainer.devices=2 (num_nodes=1) starts 2 training processes"),
    # Issue 23, found after: a key only some options of a group have, a stage name that logs nothing, a password.
    "max_train_on_a_pair_without_it": (["-m", "pair=fashion_split,digits_split", "pair.max_train=3000"],
                                       "pair.max_train=3000: pair digits_split has no key max_train; pairs with it: digits_to_fashion, fashion_shift, fashion_split"),
    "max_train_on_the_default_pair": (["pair.max_train=3000"], "pair.max_train=3000: pair digits_split has no key max_train"),
    "score_split_test": (["score.split=test"], "score.split must be train (the rows train_a trained on) or val, got test"),
    "log_models_unknown_stage": (["tracking.log_models=[finetune_b,nope]"], "tracking.log_models names stages whose network becomes an MLflow logged model, of teacher_b, finetune_b, scratch_b_dense, scratch_b_sparse (or [] for none); got ['nope']"),
    "store_password_server_down": (["tracking.uri=http://user:secret@127.0.0.1:9"], "tracking.uri=http://user:***@127.0.0.1:9 does not answer"),
}
SKIP = {"accelerator_gpu": GPU}


@pytest.fixture(autouse=True)
def no_hydra_left(monkeypatch):
    """No Hydra instance carries over from one case to the next; no traceback asked for; no Databricks workspace."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for var in ("DATABRICKS_HOST", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/.databrickscfg")
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def locked_folder(tmp_path: Path) -> Path:
    if ROOT:
        return Path("/proc/crossprune")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked


def run_main(main, prog: str, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """A command's main() as its console script calls it; its app must never start."""
    monkeypatch.setattr(sys, "argv", [prog, *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


PROGRESS = ("▸ ", "crossprune: composing the config and checking every job")  # what the command is doing, not a problem


def assert_one_line(code: int, out: str, err: str, prog: str, says: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(PROGRESS)]
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: ") and says in lines[0], err
    assert "Traceback" not in err and "secret" not in err  # nor the password of store_password_server_down


@pytest.mark.parametrize("args, says", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_one_line_and_nothing_runs(request, tmp_path, monkeypatch, capsys, args, says):
    if SKIP.get(request.node.callspec.id):
        pytest.skip("this machine has what the case lacks")
    listening = socket.create_server(("127.0.0.1", 0))  # a port that answers, for a database whose driver is absent
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "myconf").mkdir()
    places = {"tmp": tmp_path, "locked": locked_folder(tmp_path) if any("{locked}" in a for a in args) else None,
              "listening": listening.getsockname()[1], "text": tmp_path / "notes.txt", "confdir": tmp_path / "myconf"}
    args = [a.format(**places) for a in args]
    says = says.format(**places)
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)  # the default store, sqlite:///mlruns/mlflow.db, would land here
    monkeypatch.setattr(app, "app", lambda: pytest.fail("the preflight let it through: the app started"))
    try:
        assert_one_line(*run_main(app.main, "crossprune", args, monkeypatch, capsys), "crossprune", says)
    finally:
        listening.close()
        if places["locked"] and not ROOT:
            places["locked"].chmod(0o700)
    assert sorted(tmp_path.rglob("*")) == before  # no mlruns/, no database, no summary, no report


@pytest.mark.parametrize("args, says, store", [
    (["+nonsense=1"], "unknown key nonsense", None), (["study=nope"], "study=nope: no file conf/study/nope.yaml (options: capacity, ", None),
    (["study=null_check"], "is read with study.name=null_check", None),  # a narrowed study's own name
    (["report.confidence=high"], "report.confidence must be a number", None),
    (["study=capacity"], "no MLflow store at sqlite:///missing/mlflow.db", "sqlite:///missing/mlflow.db"),  # issue 23
    (["study=capacity"], "tracking.uri=http://user:***@127.0.0.1:9 does not answer", "http://user:secret@127.0.0.1:9"),
])
def test_bad_report_input_is_one_line(tmp_path, monkeypatch, capsys, args, says, store):
    """Also a store named by MLFLOW_TRACKING_URI that is missing or down (its password never printed)."""
    if store:  # the report's own check, before anything is read
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    else:
        monkeypatch.setattr(report_cli, "app", lambda: pytest.fail("the preflight let it through: the app started"))
    monkeypatch.chdir(tmp_path)
    assert_one_line(*run_main(report_cli.main, "crossprune-report", args, monkeypatch, capsys), "crossprune-report", says)
    assert list(tmp_path.iterdir()) == []


def test_the_console_script_says_the_same(tmp_path):
    """The installed `crossprune`, in a clean environment: a wrong type and a dead server, one line each, exit 2."""
    script = Path(sys.executable).with_name("crossprune")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "HYDRA_FULL_ERROR"}
    cases = {"train_a.epochs=1.5": "train_a.epochs must be an integer", "tracking.uri=http://127.0.0.1:9": "does not answer"}
    running = {arg: subprocess.Popen([script, arg], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for arg in cases}
    for arg, process in running.items():
        out, err = process.communicate(timeout=120)
        assert_one_line(process.returncode, out, err, "crossprune", cases[arg])
    assert list(tmp_path.iterdir()) == []


def test_a_config_dir_is_composed_by_the_preflight_and_its_options_pass(tmp_path, monkeypatch, capsys):
    """--config-dir adds a folder after conf/ (as Hydra does): a pair file there is an option the preflight composes
    and validates, so a good job reaches the app (a bad point is refused before any runs: config_dir_sweep_point_bad)."""
    (tmp_path / "myconf" / "pair").mkdir(parents=True)
    shipped = Path(app.CONF, "pair", "digits_split.yaml").read_text()
    (tmp_path / "myconf" / "pair" / "mine.yaml").write_text(shipped.replace("name: digits_split", "name: mine"))
    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(app, "app", lambda: started.append(True))
    monkeypatch.setattr(sys, "argv", ["crossprune", "--config-dir", str(tmp_path / "myconf"), "pair=mine", "stages=[train_a]"])
    app.main()
    assert started == [True], capsys.readouterr().err


@pytest.mark.parametrize("text, shown", [
    ("tracking.uri=http://user:secret@host:5000/api", "tracking.uri=http://user:***@host:5000/api"),
    (r"tracking.uri=http\://user\:secret@127.0.0.1\:5000 seed=1", r"tracking.uri=http\://user\:***@127.0.0.1\:5000 seed=1"),  # a sweep's
    ("postgresql+psycopg://me:p@ss@db:5432/runs", "postgresql+psycopg://me:***@db:5432/runs"),  # an unescaped @ in it
    ("https://host/x?token=abc&n=1", "https://host/x?token=***&n=1"),
    ("http://user@host and sqlite:///mlruns/mlflow.db", "http://user@host and sqlite:///mlruns/mlflow.db"),  # nothing secret
])
def test_a_password_in_a_uri_is_never_shown(text, shown):
    assert redact(text) == shown
