"""(inputs, targets, forcings) for given initial times, with their coordinates.

Evaluation and forecasting need what training batches drop: the datetimes of
each example (for the climatology and the output files) and examples past
the end of the data (a forecast from the latest analysis has no targets).
Windows are cut by `data.examples.window_dataset`, as for training files,
with forcings computed from the datetimes; target frames beyond the data are
NaN. The `evaluate` command reads its batches through Grain (`load_batches`),
as the trainer does: reader threads cut the next batches while the model
rolls out the current one.
"""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import grain
import numpy as np
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import examples as examples_lib
from graphcast_fdl.data import windowing
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.batch import batch_from_datasets


class WindowError(ValueError):
  """An initial time the data cannot serve; the message names it."""


def init_indices(
    frames,
    task: task_lib.TaskConfig,
    rollout_steps: int,
    num_init_times: int | None = None,
    require_targets: bool = True,
) -> np.ndarray:
  """Frame indices of evenly spread initial times that have full windows.

  Args:
    frames: the evaluation split.
    task: for the number of input frames.
    rollout_steps: forecast steps; with `require_targets` each initial time
      needs that many frames after it.
    num_init_times: how many (None: all usable ones).
  """
  num_inputs = task_lib.input_frames(task)
  length = num_inputs + (rollout_steps if require_targets else 0)
  usable = examples_lib.valid_starts(frames, length) + num_inputs - 1
  if not len(usable):
    raise WindowError(
        f"the split has {len(frames)} frames: no {num_inputs} input frames "
        f"followed by {rollout_steps} lead times "
        f"({rollout_steps * task_lib.TIME_STEP_HOURS / 24:g} "
        "days) without a gap"
    )
  if num_init_times is None or num_init_times >= len(usable):
    return usable
  picks = np.linspace(0, len(usable) - 1, num_init_times).round().astype(int)
  return usable[np.unique(picks)]


def index_of(frames, init_time) -> int:
  """Frame index of a datetime (string or datetime64) in the split."""
  wanted = np.datetime64(init_time, "s")
  hits = np.flatnonzero(frames.datetimes.astype("datetime64[s]") == wanted)
  if not len(hits):
    raise WindowError(
        f"init_time {init_time} is not a frame of the data (it spans "
        f"{frames.datetimes[0]} .. {frames.datetimes[-1]} every {task_lib.TIME_STEP_HOURS} h)"
    )
  return int(hits[0])


def make_examples(
    frames, task: task_lib.TaskConfig, indices: Sequence[int], rollout_steps: int
) -> tuple[Batch, xr.Dataset, np.ndarray]:
  """A batch of examples at `indices` (initial times, the last input frame).

  Returns:
    (batch, targets template dataset [batch, time, (level,) lat, lon] with
    lead times 6h.. as `time`, valid datetimes [batch, time]).
  """
  parts = [
      examples_lib.window_dataset(frames, task, int(i), rollout_steps, pad_past_end=True)
      for i in indices
  ]
  valid = np.concatenate([p.coords["datetime"].values[:, -rollout_steps:] for p in parts])
  split = [windowing.extract_inputs_targets_forcings(p, task, rollout_steps) for p in parts]
  inputs, targets, forcings = (
      xr.concat(
          [s[k] for s in split],
          dim="batch",
          data_vars="minimal",
          coords="minimal",
          compat="override",
      )
      for k in range(3)
  )
  return batch_from_datasets(inputs, targets, forcings), targets, valid


READER_THREADS = 2  # As the trainer's pipeline (`data.grain_pipeline`).


def _make(frames, task, rollout_steps, indices):
  return make_examples(frames, task, indices, rollout_steps)


def load_batches(
    frames,
    task: task_lib.TaskConfig,
    chunks: Sequence[Sequence[int]],
    rollout_steps: int,
    prefetch: int = 2,
) -> Iterator[tuple[Batch, xr.Dataset, np.ndarray]]:
  """`make_examples` of each chunk of initial-time indices, in order, read
  by Grain's threads up to `prefetch` chunks ahead."""
  chunks = [np.asarray(c, np.int64) for c in chunks]
  dataset = grain.MapDataset.source(chunks).map(
      functools.partial(_make, frames, task, rollout_steps)
  )
  options = grain.ReadOptions(
      num_threads=max(1, min(READER_THREADS, prefetch)), prefetch_buffer_size=max(prefetch, 1)
  )
  return iter(dataset.to_iter_dataset(options))
