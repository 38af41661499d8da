"""`train` refuses, in one line, what cannot run before building any model."""

import errno
import json
import os
import subprocess
import sys

import fiddle as fdl
from fiddle.experimental import serialization
import pytest

from graphcast_fdl import experiments
from graphcast_fdl.cli import config_files
from graphcast_fdl.cli import train as train_command
from graphcast_fdl.train import workdir as workdir_lib
from conftest import REPO
from graphcast_fdl.cli.errors import UsageError
from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl.experiments import convert


def _experiment(data, max_rollout):
  cfg = experiments.demo()
  cfg.data = convert.as_config(data)
  cfg.task = convert.as_config(tiny_task())
  experiments.resolution(cfg, degrees=6.0)
  experiments.annealing(cfg, max_rollout=max_rollout, steps_each=1)
  return fdl.build(cfg)


def test_rollout_longer_than_the_split_is_named(tiny_data):
  # 4 days of 6-hourly frames: 16 frames, so at most 14 target steps.
  train_command.check_rollouts_fit_data(_experiment(tiny_data, max_rollout=14))
  with pytest.raises(UsageError) as info:
    train_command.check_rollouts_fit_data(_experiment(tiny_data, max_rollout=15))
  assert str(info.value) == (
      "schedule.phases[15].rollout_steps=15 is longer than split 'train' of "
      "'synthetic_weather' allows (14)"
  )


def test_more_devices_than_visible_is_named():
  experiment = fdl.build(experiments.graphcast())
  with pytest.raises(
      UsageError,
      match=r"mesh.num_devices=32 but 1 device\(s\) "
      r"are visible: use --config=fiddler:devices\(n=1\)",
  ):
    train_command.check_fits_machine(experiment, 1)


def test_estimate_is_reported_for_the_visible_devices(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top

  assert hardware.detect("gpu", "NVIDIA H200") == "h200"
  assert hardware.detect("tpu", "TPU v4") == "tpu_v4"
  assert hardware.detect("tpu", "TPU v5 lite") == "tpu_v5e"
  assert hardware.detect("gpu", "NVIDIA A100-SXM4-80GB") == "a100_80gb"
  assert hardware.detect("cpu", "cpu") == "cpu"
  assert hardware.detect("gpu", "Quantum abacus") is None
  cfg = experiments.graphcast()
  experiments.devices(cfg, n=32)
  tpu = types.SimpleNamespace(platform="tpu", device_kind="TPU v4")
  doc = train_command.report_estimate(fdl.build(cfg), tpu, str(tmp_path))
  assert doc["hardware"] == "tpu_v4" and doc["num_devices"] == 32
  with open(tmp_path / "estimate.json") as f:
    assert json.load(f)["phases"][0]["name"] == "single_step"
  unknown = types.SimpleNamespace(platform="gpu", device_kind="abacus")
  assert train_command.report_estimate(fdl.build(cfg), unknown, None) is None


def test_xla_on_cpu_checks_each_phase_before_training(tmp_path, monkeypatch, caplog):
  """`train --xla` on any backend: this machine's compiler judges each phase
  against the device's memory, and the phases that will not fit are named."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import xla_cost  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv(xla_cost.CACHE_ENV_VAR, str(tmp_path / "cache"))
  cfg = experiments.demo()
  experiments.annealing(cfg, max_rollout=2, steps_each=1)
  experiment = fdl.build(cfg)
  cpu = types.SimpleNamespace(platform="cpu", device_kind="cpu")
  doc = train_command.report_estimate(experiment, cpu, None, xla=True)
  phases = doc["phases"]
  assert [p["rollout_steps"] for p in phases][-1] == 2
  assert {p["source"] for p in phases} == {"xla:cpu decides fits"}
  assert all(p["fits"] and p["xla"]["peak_bytes"] > 0 for p in phases)
  # A device too small for the 2-step phase but not for 1-step ones.
  first_peak, rollout_peak = phases[0]["xla"]["peak_bytes"], phases[-1]["xla"]["peak_bytes"]
  assert rollout_peak > first_peak
  small = dataclasses.replace(hardware.this_cpu(), memory_bytes=(first_peak + rollout_peak) / 2)
  monkeypatch.setattr(hardware, "this_cpu", lambda: small)
  caplog.set_level("WARNING")
  doc = train_command.report_estimate(experiment, cpu, None, xla=True)
  assert [p["fits"] for p in doc["phases"]] == [p["rollout_steps"] == 1 for p in phases]
  warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert len(warned) == 1 and warned[0].startswith(f"Phase {phases[-1]['name']} needs about")
  assert "xla:cpu decides fits" in warned[0]
  # Without --xla the analytic model decides (no compile).
  doc = train_command.report_estimate(experiment, cpu, None)
  assert {p["source"] for p in doc["phases"]} == {"analytic"}


def _train(*args, timeout=120):
  return subprocess.run(
      [sys.executable, "-m", "graphcast_fdl.main", "train", *args],
      capture_output=True,
      text=True,
      timeout=timeout,
      cwd=REPO,
  )


def _record_run(workdir, cfg, result=None):
  config_files.write_config_files(cfg, str(workdir))
  if result is not None:
    (workdir / "result.json").write_text(json.dumps(result) + "\n")
  return _snapshot(workdir)


def _snapshot(workdir):
  return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in workdir.iterdir() if p.is_file()}


def test_workdir_states_are_told_apart_before_writing(tmp_path):
  cfg = experiments.demo()
  workdir = tmp_path / "run"
  assert train_command.check_workdir(cfg, str(workdir), False) == "new"
  _record_run(workdir, cfg)
  assert train_command.check_workdir(cfg, str(workdir), False) == "resume"
  # Replaying the recorded config.json is the same config.
  replay = serialization.load_json((workdir / "config.json").read_text())
  assert train_command.check_workdir(replay, str(workdir), False) == "resume"
  wider = experiments.demo()
  wider.model.latent_size = 48
  # Before any checkpoint, a corrected config simply replaces the record.
  assert train_command.check_workdir(wider, str(workdir), False) == "changed"
  (workdir / "checkpoints" / "10").mkdir(parents=True)
  with pytest.raises(UsageError) as info:
    train_command.check_workdir(wider, str(workdir), False)
  message = str(info.value)
  assert "holds a run with another config (model.latent_size: " in message
  assert "-> 48)" in message and "--allow_config_change" in message
  assert "finetune_from(checkpoint=" in message and "\n" not in message
  assert train_command.check_workdir(wider, str(workdir), True) == "changed"
  (workdir / "result.json").write_text('{"global_step": 360}\n')
  assert train_command.check_workdir(cfg, str(workdir), False) == "finished"


def test_foreign_folder_and_file_are_refused(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(UsageError, match="is not empty and holds no run"):
    train_command.check_workdir(experiments.demo(), str(tmp_path), False)
  with pytest.raises(UsageError, match="is a file, not a folder"):
    train_command.check_workdir(experiments.demo(), str(tmp_path / "notes.txt"), False)


def test_record_moves_to_history_when_the_config_changes(tmp_path):
  _record_run(tmp_path, experiments.demo(), {"global_step": 5})
  moved = workdir_lib.archive_record(str(tmp_path))
  assert sorted(os.listdir(moved)) == ["config.json", "config.txt", "result.json"]
  assert moved.endswith(os.path.join("history", "1"))
  assert not (tmp_path / "config.json").exists()


def test_train_command_changes_nothing_it_should_not(tmp_path):
  finished = tmp_path / "finished"
  (finished / "checkpoints" / "360").mkdir(parents=True)
  before = _record_run(finished, experiments.demo(), {"global_step": 360, "wall_time_s": 143.5})
  result = _train("--config=config:demo", f"--workdir={finished}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "holds a finished run (global step 360" in result.stdout
  assert _snapshot(finished) == before

  result = _train(
      "--config=config:demo", "--config=set:model.latent_size=48", f"--workdir={finished}"
  )
  assert result.returncode == 2
  assert (
      result.stderr.strip()
      .splitlines()[-1]
      .startswith(
          f"error: --workdir={finished} holds a run with another config "
          "(model.latent_size: 32 -> 48)"
      )
  )
  assert _snapshot(finished) == before

  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "config.txt").write_text("not ours")
  result = _train("--config=config:demo", f"--workdir={foreign}")
  assert result.returncode == 2
  assert "holds no run (no config.json)" in result.stderr
  assert sorted(os.listdir(foreign)) == ["config.txt"]


_FAIL = """
import errno, sys
from absl import flags
from graphcast_fdl.cli import errors
flags.FLAGS(["prog"] + sys.argv[1:])
def fail():
  raise OSError(errno.ENOSPC, "No space left on device", "/data/run/x")
errors.exit_on_failure(fail)
"""


@pytest.mark.parametrize("debug", [False, True])
def test_failures_users_cause_are_one_line_unless_debug(debug):
  args = ["--debug"] if debug else []
  result = subprocess.run(
      [sys.executable, "-c", _FAIL, *args], capture_output=True, text=True, timeout=60, cwd=REPO
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[-1] == "error: no space left on device: /data/run/x"
  assert (len(lines) > 1) == debug


def test_one_line_names_the_cause_of_expected_errors():
  from graphcast_fdl.train import trainer  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli import errors  # pylint: disable=g-import-not-at-top

  assert errors.one_line(trainer.NonFiniteError("training diverged: x")) == ("training diverged: x")
  assert errors.one_line(FileNotFoundError("normalisation stats file not found: /s/mean.nc")) == (
      "normalisation stats file not found: /s/mean.nc"
  )
  assert errors.one_line(PermissionError(errno.EROFS, "Read-only file system", "/ro/run")) == (
      "read-only file system: /ro/run"
  )
  assert errors.one_line(KeyError("bug")) is None
