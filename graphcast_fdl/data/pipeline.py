"""The data layer's public entry points, as the trainer and evaluator call them.

A `DataConfig` names a registered source (`sources`: "zarr" here,
"synthetic_weather" and "era5" from the builders in `datasets/`), the grid and
the splits; the task names variables and levels. Every function here opens
the split's frames once (cached) and cuts examples from them; the training and
evaluation batches are loaded through Grain (`grain_pipeline`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import numpy as np
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import examples as examples_lib
from graphcast_fdl.data import fingerprint
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data import sources
from graphcast_fdl.data import stats as stats_lib
from graphcast_fdl.data import validation
from graphcast_fdl.data import xarray_frames
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats

DataError = frames_lib.DataError


def prepare(data: DataConfig, task: task_lib.TaskConfig) -> None:
  """Makes sure the data exists (a source may build it locally if absent).

  Raises:
    DataError: naming the unknown source or the missing dataset or store.
  """
  sources.get(data.source).prepare(data, task)


@functools.lru_cache(maxsize=16)
def _frames(data: DataConfig, task: task_lib.TaskConfig, split: str) -> frames_lib.Frames:
  return sources.get(data.source).frames(data, task, split)


def split_frames(data: DataConfig, task: task_lib.TaskConfig, split: str) -> frames_lib.Frames:
  """The (cached) frames of one split."""
  return _frames(data, task, split)


@functools.lru_cache(maxsize=32)
def example_maker(
    data: DataConfig, task: task_lib.TaskConfig, split: str, rollout_steps: int
) -> examples_lib.ExampleMaker:
  """The (cached) cutter of a split's windows of one rollout length.

  Raises:
    DataError: the split holds no such window (naming the longest rollout).
  """
  maker = examples_lib.ExampleMaker(_frames(data, task, split), task, rollout_steps)
  if not len(maker.starts):
    raise DataError(
        f"split {split!r} has no window of {maker.length} consecutive "
        f"{task_lib.TIME_STEP_HOURS}-hourly frames (rollout {rollout_steps}): max is "
        f"{max_rollout_steps(data, task, split)}"
    )
  return maker


def max_rollout_steps(data: DataConfig, task: task_lib.TaskConfig, split: str) -> int:
  """The longest rollout one window of the split can hold."""
  times = _frames(data, task, split).datetimes
  breaks = np.flatnonzero(np.diff(times) != task_lib.TIME_STEP)
  edges = np.concatenate([[-1], breaks, [len(times) - 1]])
  longest = int(np.max(np.diff(edges))) if len(times) else 0
  return max(longest - task_lib.input_frames(task), 0)


def eval_windows(maker: examples_lib.ExampleMaker, num_examples: int) -> np.ndarray:
  """Indices (into `maker.starts`) of windows spread evenly over the split
  (repeating if it is short): the evaluation examples, the same every time."""
  return np.linspace(0, len(maker.starts) - 1, num_examples).round().astype(int)


def example_times(
    data: DataConfig,
    task: task_lib.TaskConfig,
    rollout_steps: int,
    num_batches: int,
    split: str | None = None,
) -> np.ndarray:
  """[num_batches, global_batch_size] init times (last input frame) of
  `eval_batches` (or of the same spread over another split)."""
  maker = example_maker(data, task, split or data.eval_split, rollout_steps)
  starts = maker.starts[eval_windows(maker, num_batches * data.global_batch_size)]
  times = np.array([maker.init_time(s) for s in starts])
  return times.reshape(num_batches, data.global_batch_size)


def example_window(
    data: DataConfig, task: task_lib.TaskConfig, split: str, init_time, rollout_steps: int
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
  """(inputs, targets, forcings) datasets with coordinates for one init time."""
  return examples_lib.example_datasets(_frames(data, task, split), task, rollout_steps, init_time)


def _zarr_stats_dir(data: DataConfig, task: task_lib.TaskConfig) -> str:
  # By content: a store replaced at the same path gets fresh statistics.
  key = hashlib.sha1(
      repr(
          (
              fingerprint.store_fingerprint(data.path),
              data.train_split,
              data.resolution,
              data.include_poles,
              task.pressure_levels,
          )
      ).encode()
  ).hexdigest()[:12]
  root = data.data_dir or os.path.expanduser("~/.cache/graphcast_fdl")
  return os.path.join(root, "stats", key)


def _zarr_prepare(data: DataConfig, task: task_lib.TaskConfig) -> None:
  _frames(data, task, data.train_split)  # Opening checks the store.


# The data layer's own source: a store read in place (no TFDS build).
sources.register(
    "zarr",
    sources.Source(
        frames=lambda data, task, split: xarray_frames.open_frames(
            data.path,
            split,
            task=task,
            resolution=data.resolution,
            include_poles=data.include_poles,
        ),
        prepare=_zarr_prepare,
        stats_dir=_zarr_stats_dir,
    ),
)


def normalization_stats(
    data: DataConfig, task: task_lib.TaskConfig, stats_dir: str | None = None
) -> NormalizationStats:
  """Loads `stats_dir`, or computes the train split's stats once and caches them.

  Returned at the task's pressure levels.
  """
  if stats_dir is None:
    stats_dir = sources.get(data.source).stats_dir(data, task)
    if not os.path.exists(os.path.join(stats_dir, "diffs_stddev_by_level.nc")):
      stats_lib.compute_stats(_frames(data, task, data.train_split)).save(stats_dir)
  stats = NormalizationStats.load(stats_dir)
  validation.check_stats(
      stats,
      stats_dir,
      set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables),
  )
  missing = sorted(set(task.pressure_levels) - set(stats.mean.level.values.tolist()))
  if missing:
    raise DataError(f"normalisation stats in {stats_dir} lack pressure levels {missing}")
  return stats.select_levels(task.pressure_levels)
