"""The Grain pipeline yields exactly the batches of `train_batches`."""

import dataclasses

from absl import flags
import numpy as np
import pytest

from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import grain_pipeline


def _assert_same(grain_batches, ours):
  for a, b in zip(grain_batches, ours, strict=True):
    for part in ("inputs", "targets", "forcings"):
      assert sorted(getattr(a, part)) == sorted(getattr(b, part))  # Order: pytree-sorted.
      for key, value in getattr(b, part).items():
        np.testing.assert_array_equal(getattr(a, part)[key], value, err_msg=key)


@pytest.mark.parametrize("process_index,process_count", [(0, 1), (1, 2)])
def test_grain_threads_give_the_iterator_batches(tiny_data, process_index, process_count):
  task = tiny_task()
  iterator = data.train_batches(tiny_data, task, 2, 5, process_index, process_count)
  ours = [next(iterator) for _ in range(4)]
  iterator.close()
  dataset = grain_pipeline.train_dataset(tiny_data, task, 2, 5, 4, process_index, process_count)
  _assert_same(list(dataset), ours)


def test_grain_worker_processes_give_the_iterator_batches(tiny_data):
  if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (app.run parses them).
    flags.FLAGS.mark_as_parsed()
  task = tiny_task()
  cfg = dataclasses.replace(tiny_data, transfer_dtype="bfloat16")
  iterator = data.train_batches(cfg, task, 1, 0, 0, 1)
  ours = [next(iterator) for _ in range(3)]
  iterator.close()
  dataset = grain_pipeline.train_dataset(cfg, task, 1, 0, 3, 0, 1, num_workers=2)
  _assert_same(list(dataset), ours)
