"""`train` refuses, in one line, what cannot run before building any model."""

import fiddle as fdl
import pytest

from graphcast_fdl import experiments
from graphcast_fdl.cli import train as train_command
from graphcast_fdl.cli.errors import UsageError
from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import
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
      "'synthetic_weather' allows (14)")


def test_more_devices_than_visible_is_named():
  experiment = fdl.build(experiments.graphcast())
  with pytest.raises(UsageError, match=r"mesh.num_devices=32 but 1 device\(s\) "
                     r"are visible: use --config=fiddler:devices\(n=1\)"):
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
