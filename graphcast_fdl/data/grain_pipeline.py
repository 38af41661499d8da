"""Training batches through Grain, in exactly the order `train_batches` gives.

Grain (Google's data loader for JAX) runs the same per-step loading as
`pipeline.train_batches` with its own machinery: a `MapDataset` over global
steps whose element is this host's batch of that step, read by Grain threads
and, with `num_workers`, by worker processes. The global order stays a
function of (seed, step) alone (`iterators.step_indices`), each process takes
its contiguous share (`iterators.host_slice`), so a restart at step s needs
no iterator state and yields bitwise the batches `train_batches` yields
(tests hold the two equal). Not wired into the trainer yet: see the issue
notes (Grain's iterator state in the Orbax checkpoint, eval batches, zarr
sources through tensorstore).
"""

from __future__ import annotations

import dataclasses
import functools

import grain

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import examples
from graphcast_fdl.data import iterators
from graphcast_fdl.data import pipeline
from graphcast_fdl.data import sources
from graphcast_fdl.data import transfer
from graphcast_fdl.data.config import DataConfig


@functools.lru_cache(maxsize=8)
def _maker(
    data: DataConfig, task: task_lib.TaskConfig, rollout_steps: int, source_module: str
) -> examples.ExampleMaker:
  """One per process: worker processes open the frames themselves (and
  register the data source first: they never imported the builders)."""
  sources.get_in_worker(data.source, source_module)
  return examples.ExampleMaker(
      pipeline.split_frames(data, task, data.train_split), task, rollout_steps
  )


@dataclasses.dataclass(frozen=True)
class StepBatch:
  """global step -> this host's batch. Plain data, so it pickles into workers."""

  data: DataConfig
  task: task_lib.TaskConfig
  rollout_steps: int
  process_index: int
  process_count: int
  source_module: str

  def __call__(self, step: int):
    maker = _maker(self.data, self.task, self.rollout_steps, self.source_module)
    picks = iterators.step_indices(
        self.data.seed, int(step), len(maker.starts), self.data.global_batch_size
    )
    local = iterators.host_slice(picks, self.process_index, self.process_count)
    return transfer.cast(maker.batch(maker.starts[local]), self.data.transfer_dtype)


def train_dataset(
    data: DataConfig,
    task: task_lib.TaskConfig,
    rollout_steps: int,
    start_step: int,
    num_steps: int,
    process_index: int,
    process_count: int,
    num_workers: int = 0,
    num_threads: int = 2,
) -> grain.IterDataset:
  """Host-local batches of global steps [start_step, start_step + num_steps).

  Args:
    data, task, rollout_steps: as `pipeline.train_batches`.
    start_step, num_steps: the global steps to load.
    process_index, process_count: this JAX process and how many there are.
    num_workers: Grain worker processes (0: load in this process's threads).
    num_threads: Grain reader threads per process; `data.prefetch` batches
      are buffered ahead.
  """
  load = StepBatch(
      data, task, rollout_steps, process_index, process_count, sources.provider(data.source)
  )
  dataset = grain.MapDataset.range(int(start_step), int(start_step) + int(num_steps))
  dataset = dataset.map(load).to_iter_dataset(
      grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(data.prefetch, 1))
  )
  if num_workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return dataset
