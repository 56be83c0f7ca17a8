"""simstudy.cluster's launcher checks: a launcher setting that sbatch, submitit or joblib would
refuse (after the sweep folder was written) is a ConfigError naming its key, before anything runs."""

from __future__ import annotations

import math

import pytest

from simstudy.app import preflight
from simstudy.cluster import check_launcher, check_launcher_settings
from simstudy.composition import compose
from simstudy.config import ConfigError

SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug"]


def _launcher_error(overrides: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        check_launcher(compose(overrides, return_hydra_config=True).hydra.launcher)
    return info.value


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # Hydra's basic launcher: no settings
        ["hydra/launcher=slurm"],  # the presets as shipped
        ["hydra/launcher=local_submitit"],
        ["hydra/launcher=local_joblib"],
        [*SLURM, "hydra.launcher.mem_gb=null", "hydra.launcher.cpus_per_task=null", "hydra.launcher.gpus_per_node=0"],
        [*SLURM, "hydra.launcher.timeout_min=1", "hydra.launcher.array_parallelism=1", "hydra.launcher.mem_gb=1"],
        ["hydra/launcher=local_joblib", "hydra.launcher.n_jobs=-1"],  # joblib's "every core"
        ["hydra/launcher=local_joblib", "hydra.launcher.n_jobs=1"],
    ],
)
def test_the_presets_and_good_settings_pass(overrides):
    check_launcher(compose(overrides, return_hydra_config=True).hydra.launcher)


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        ([*SLURM, "hydra.launcher.timeout_min=-5"], "timeout_min", -5),
        ([*SLURM, "hydra.launcher.timeout_min=0"], "timeout_min", 0),
        ([*SLURM, "hydra.launcher.cpus_per_task=0"], "cpus_per_task", 0),
        ([*SLURM, "hydra.launcher.mem_gb=-1"], "mem_gb", -1),
        ([*SLURM, "hydra.launcher.mem_gb=0"], "mem_gb", 0),
        ([*SLURM, "hydra.launcher.array_parallelism=0"], "array_parallelism", 0),
        (["hydra/launcher=slurm", "hydra.launcher.partition=''"], "partition", ""),
        (["hydra/launcher=slurm", "hydra.launcher.partition='a b'"], "partition", "a b"),
        ([*SLURM, "hydra.launcher.nodes=0"], "nodes", 0),
        ([*SLURM, "hydra.launcher.tasks_per_node=0"], "tasks_per_node", 0),
        ([*SLURM, "hydra.launcher.gpus_per_node=-1"], "gpus_per_node", -1),
        ([*SLURM, "hydra.launcher.gpus_per_task=0"], "gpus_per_task", 0),
        ([*SLURM, "hydra.launcher.cpus_per_gpu=0"], "cpus_per_gpu", 0),
        (["hydra/launcher=local_submitit", "hydra.launcher.timeout_min=-1"], "timeout_min", -1),
        (["hydra/launcher=local_submitit", "hydra.launcher.cpus_per_task=0"], "cpus_per_task", 0),
        (["hydra/launcher=local_joblib", "hydra.launcher.n_jobs=0"], "n_jobs", 0),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_its_key(overrides, key, value):
    err = _launcher_error(overrides)
    assert err.key == f"hydra.launcher.{key}" and err.value == value
    assert "\n" not in str(err) and str(err).startswith(f"hydra.launcher.{key}=")


def test_an_interpolation_that_cannot_resolve_names_its_key(monkeypatch):
    monkeypatch.delenv("SIMSTUDY_NO_SUCH_VARIABLE", raising=False)
    err = _launcher_error([*SLURM, "hydra.launcher.timeout_min=${oc.env:SIMSTUDY_NO_SUCH_VARIABLE}"])
    assert err.key == "hydra.launcher.timeout_min" and "SIMSTUDY_NO_SUCH_VARIABLE" in str(err)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"timeout_min": True}, "timeout_min"),  # a bool is an int to Python, not a count
        ({"timeout_min": 1.5}, "timeout_min"),
        ({"timeout_min": None}, "timeout_min"),  # not optional, unlike cpus_per_task
        ({"mem_gb": math.nan}, "mem_gb"),
        ({"mem_gb": math.inf}, "mem_gb"),
        ({"mem_gb": "8"}, "mem_gb"),
        ({"partition": 3}, "partition"),
        ({"n_jobs": False}, "n_jobs"),
    ],
)
def test_the_rules_refuse_values_hydra_would_not_type(settings, key):
    with pytest.raises(ConfigError) as info:
        check_launcher_settings(settings)
    assert info.value.key == f"hydra.launcher.{key}"


def test_the_rules_name_a_setting_as_the_caller_does():
    check_launcher_settings({"mem_gb": 0.5, "cpus_per_task": None, "partition": None, "n_jobs": -2, "name": ""})
    with pytest.raises(ConfigError) as info:
        check_launcher_settings({"cpus_per_task": 0}, name=lambda key: "--cpus-per-task", unset="")
    assert str(info.value) == "--cpus-per-task=0: must be an integer >= 1"


@pytest.mark.parametrize(
    ("setting", "start"),
    [
        ("hydra.launcher.timeout_min=-5", "hydra.launcher.timeout_min=-5: must be an integer >= 1"),
        # Hydra's type check: a wrong type, which one_line used to call an unknown key
        ("hydra.launcher.timeout_min=abc", "hydra.launcher.timeout_min: wrong type"),
    ],
)
def test_the_command_refuses_a_bad_setting_before_it_writes_anything(tmp_path, capsys, setting, start):
    sweep = tmp_path / "sweep"
    argv = ["-m", "study=quickstart", "seed=0,1", *SLURM, setting, f"hydra.sweep.dir={sweep}"]
    with pytest.raises(SystemExit) as exit_:
        preflight(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"simstudy: config error: {start}")
    assert not sweep.exists()
