"""A tiny synthetic dataset shared by the data tests (built once per session)."""

import dataclasses

import pytest

from graphcast_fdl import task as task_lib
from graphcast_fdl.data.config import DataConfig

LEVELS = (500, 850, 1000)


def tiny_task(**kwargs):
  return dataclasses.replace(task_lib.task_13(), pressure_levels=LEVELS, **kwargs)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  """6 deg grid, 3 levels, 4 + 2 days; prepared."""
  from graphcast_fdl import data  # pylint: disable=g-import-not-at-top

  config = DataConfig(
      source="synthetic_weather",
      resolution=6.0,
      data_dir=str(tmp_path_factory.mktemp("tfds")),
      synthetic_days=(4, 2),
      global_batch_size=4,
      seed=3,
  )
  data.prepare(config, tiny_task())
  return config
