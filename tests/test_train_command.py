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
