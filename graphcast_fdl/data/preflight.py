"""Checks of the evaluation data run before the first training step.

Evaluation batches are first loaded at the first evaluation, which may come
after all of training: a NaN there would surface only then (or, in TFDS
records, which are not checked on read, never by name). Reading the frames the
evaluation windows touch up front costs one evaluation's loading.
"""

from __future__ import annotations

import numpy as np

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import pipeline
from graphcast_fdl.data import validation
from graphcast_fdl.data.config import DataConfig


def eval_frame_indices(
    data: DataConfig, task: task_lib.TaskConfig, rollout_steps: int, num_batches: int
) -> np.ndarray:
  """Sorted indices, in the eval split's frames, that `eval_batches` reads."""
  frames = pipeline.split_frames(data, task, data.eval_split)
  init_times = pipeline.example_times(data, task, rollout_steps, num_batches).ravel()
  inits = np.searchsorted(frames.datetimes, init_times.astype(frames.datetimes.dtype))
  offsets = np.arange(-task_lib.input_frames(task) + 1, rollout_steps + 1)
  return np.unique((inits[:, None] + offsets[None, :]).ravel())


def check_eval_split(
    data: DataConfig, task: task_lib.TaskConfig, rollout_steps: int, num_batches: int
) -> None:
  """Raises a DataError naming the first NaN/Inf/fill value evaluation would read."""
  frames = pipeline.split_frames(data, task, data.eval_split)
  source = f"eval split {data.eval_split!r} of {data.source} {data.path or ''}".rstrip()
  for name, value in frames.statics.items():
    validation.check_values(name, np.asarray(value), source=source)
  for index in eval_frame_indices(data, task, rollout_steps, num_batches):
    for name, value in frames.frame(int(index)).items():
      validation.check_values(name, value, frames.levels, frames.datetimes[index], source)
