"""Training/eval iterators: determinism, resume, host sharding, windows."""

import dataclasses

import numpy as np
import pytest

from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import iterators
from graphcast_fdl.model import batch as batch_lib


def _equal(a, b):
  return all(
      np.array_equal(getattr(a, p)[k], getattr(b, p)[k])
      for p in ("inputs", "targets", "forcings")
      for k in getattr(a, p)
  )


def _take(iterator, n):
  out = [next(iterator) for _ in range(n)]
  iterator.close()
  return out


def test_batch_layout(tiny_data):
  batch = _take(data.train_batches(tiny_data, tiny_task(), 3, 0, 0, 1), 1)[0]
  assert batch.inputs["temperature"].shape == (4, 2, 3, 31, 60)
  assert batch.inputs["land_sea_mask"].shape == (4, 31, 60)
  assert batch.inputs["day_progress_sin"].shape == (4, 2, 60)
  assert batch.targets["total_precipitation_6hr"].shape == (4, 3, 31, 60)
  assert batch.forcings["year_progress_cos"].shape == (4, 3)
  assert set(batch.forcings) == set(tiny_task().forcing_variables)
  assert all(v.dtype == np.float32 for v in batch.inputs.values())


def test_deterministic_and_resumable(tiny_data):
  task = tiny_task()
  first = _take(data.train_batches(tiny_data, task, 1, 0, 0, 1), 4)
  again = _take(data.train_batches(tiny_data, task, 1, 0, 0, 1), 4)
  resumed = _take(data.train_batches(tiny_data, task, 1, 2, 0, 1), 2)
  assert all(_equal(a, b) for a, b in zip(first, again))
  assert _equal(first[2], resumed[0]) and _equal(first[3], resumed[1])
  assert not _equal(first[0], first[1])
  other_seed = dataclasses.replace(tiny_data, seed=4)
  assert not _equal(first[0], _take(data.train_batches(other_seed, task, 1, 0, 0, 1), 1)[0])


def test_two_hosts_union_is_one_host(tiny_data):
  task = tiny_task()
  whole = _take(data.train_batches(tiny_data, task, 2, 5, 0, 1), 1)[0]
  halves = [_take(data.train_batches(tiny_data, task, 2, 5, i, 2), 1)[0] for i in (0, 1)]
  for part in ("inputs", "targets", "forcings"):
    for key, value in getattr(whole, part).items():
      assert getattr(halves[0], part)[key].shape[0] == 2
      joined = np.concatenate([getattr(h, part)[key] for h in halves])
      np.testing.assert_array_equal(joined, value)


def test_sampling_is_uniform_with_replacement():
  picks = np.concatenate([iterators.step_indices(0, s, 10, 8) for s in range(2000)])
  counts = np.bincount(picks, minlength=10) / len(picks)
  np.testing.assert_allclose(counts, 0.1, atol=0.01)
  # With replacement: some batch repeats an index.
  assert any(len(set(iterators.step_indices(0, s, 10, 8))) < 8 for s in range(20))


def test_prefetch_keeps_order():
  out = list(iterators.prefetched(lambda s: s * s, iter(range(10)), prefetch=3))
  assert out == [s * s for s in range(10)]


def test_eval_batches_fixed_and_match_xarray_windows(tiny_data):
  task = tiny_task()
  batches = data.eval_batches(tiny_data, task, 2, 2)
  assert _equal(batches[1], data.eval_batches(tiny_data, task, 2, 2)[1])
  times = data.example_times(tiny_data, task, 2, 2)
  assert times.shape == (2, 4)
  inputs, targets, forcings = data.example_window(
      tiny_data, task, tiny_data.eval_split, times[1, 3], 2
  )
  assert inputs.time.values.astype("timedelta64[h]").astype(int).tolist() == [-6, 0]
  assert targets.time.values.astype("timedelta64[h]").astype(int).tolist() == [6, 12]
  window = batch_lib.batch_from_datasets(inputs, targets, forcings)
  for part in ("inputs", "targets", "forcings"):
    for key, value in getattr(window, part).items():
      np.testing.assert_array_equal(value[0], getattr(batches[1], part)[key][3])


def test_max_rollout_and_too_long_rollout(tiny_data):
  task = tiny_task()
  assert data.max_rollout_steps(tiny_data, task, "validation") == 2 * 4 - 2
  with pytest.raises(data.DataError, match="rollout 7"):
    data.eval_batches(tiny_data, task, 7, 1)


def test_precip_out_task_and_missing_variable(tiny_data):
  task = tiny_task(
      input_variables=tuple(
          v for v in tiny_task().input_variables if v != "total_precipitation_6hr"
      )
  )
  batch = data.eval_batches(tiny_data, task, 1, 1)[0]
  assert "total_precipitation_6hr" not in batch.inputs
  assert "total_precipitation_6hr" in batch.targets
  bad = tiny_task(target_variables=tiny_task().target_variables + ("sea_surface_temperature",))
  with pytest.raises(data.DataError, match="sea_surface_temperature"):
    data.eval_batches(tiny_data, bad, 1, 1)
