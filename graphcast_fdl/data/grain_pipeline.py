"""The training and evaluation input pipelines, on Grain.

Grain (Google's data loader for JAX) does the ordering, sharding, threading,
worker processes and prefetching; this module says what an element is.

Training: the split's windows are shuffled by Grain (`MapDataset.shuffle`,
reshuffled every epoch, random access at any position), repeated without end
and cut into global batches; global step s is batch s. Each JAX process
takes its contiguous share of every global batch (a strided slice of the
dataset, as Grain's process sharding does), so the union over processes is
the batch one process would load and the order is a function of
(data.seed, step) alone. Each element is read by `LoadBatch`: the fast
assembly (`assembly`) from the split's frames, which are Grain data sources
themselves (`record_source.RecordSource` over the array_record files, each
field read straight into its batch slot; or a zarr store read through
tensorstore), in Grain's reader threads or, with `data.num_workers`, its
worker processes, `data.prefetch` batches ahead. Order and state live in a
window-index dataset (range -> shuffle -> repeat -> batch -> process
share) rather than in `MapDataset.source(frames)`: an element is a window of
consecutive frames, and the batch is filled in place (one copy) instead of
stacked from per-frame elements (a second copy of every byte).

`TrainIterator` counts the global step it is at; its state (that step and
Grain's own) is written per process into the Orbax checkpoint by Grain's
checkpoint handler (`train.checkpointing`), and `set_state` resumes exactly
there. Since the order is a function of the step, an iterator can also start
at any step without state (a checkpoint saved before this, or resumed with
another worker count).

Evaluation: fixed windows spread evenly over the eval split, batched the same
way, loaded once through Grain's threads.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

import grain

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import pipeline
from graphcast_fdl.data import sources
from graphcast_fdl.data import transfer
from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.model.batch import Batch

READER_THREADS = 2  # Reads release the GIL: two keep a 2-core host busy.


@dataclasses.dataclass(frozen=True)
class LoadBatch:
  """Window indices -> their batch. Plain data, so it pickles into workers."""

  data: DataConfig
  task: task_lib.TaskConfig
  split: str
  rollout_steps: int
  source_module: str  # Registers `data.source` in a fresh worker process.

  def maker(self):
    sources.get_in_worker(self.data.source, self.source_module)
    return pipeline.example_maker(self.data, self.task, self.split, self.rollout_steps)

  def __call__(self, windows) -> Batch:
    maker = self.maker()
    return transfer.cast(maker.batch(maker.starts[windows]), self.data.transfer_dtype)


def window_order(
    num_windows: int, seed: int, global_batch_size: int, process_index: int, process_count: int
) -> grain.MapDataset:
  """[global step] -> this process's window indices of that step (endless)."""
  if global_batch_size % process_count:
    raise ValueError(
        f"data.global_batch_size={global_batch_size} does not split over "
        f"{process_count} processes"
    )
  per_process = global_batch_size // process_count
  # 2**62 / num_windows epochs, "without end": Grain's endless repeat has
  # length sys.maxsize, which `batch(1)` rounds (in floats) past an index.
  epochs = max((1 << 62) // max(num_windows, 1), 1)
  order = grain.MapDataset.range(num_windows).shuffle(seed=int(seed)).repeat(epochs)
  return order.batch(per_process)[process_index::process_count]


def _options(data: DataConfig) -> grain.ReadOptions:
  # More threads than buffered batches could not run at once.
  threads = max(1, min(READER_THREADS, data.prefetch))
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=data.prefetch)


def _read(dataset: grain.MapDataset, data: DataConfig) -> grain.IterDataset:
  dataset = dataset.to_iter_dataset(_options(data))
  if data.num_workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.num_workers))
  return dataset


def train_dataset(
    data: DataConfig,
    task: task_lib.TaskConfig,
    rollout_steps: int,
    start_step: int,
    process_index: int,
    process_count: int,
) -> grain.IterDataset:
  """This process's batches of global steps start_step, start_step + 1, ...

  Raises:
    DataError: the split cannot be opened or holds no window (raised here,
      not in a reader thread).
  """
  load = LoadBatch(data, task, data.train_split, rollout_steps, sources.provider(data.source))
  num_windows = len(load.maker().starts)
  steps = window_order(num_windows, data.seed, data.global_batch_size, process_index, process_count)
  return _read(steps[int(start_step) :].map(load), data)


class TrainIterator:
  """Grain's iterator over `train_dataset`, knowing its global step.

  Attributes:
    step: the global step of the next batch.
  """

  def __init__(
      self,
      make: Callable[[int], grain.IterDataset],
      start_step: int,
      num_workers: int,
      layout: tuple[int, int] = (0, 1),
  ):
    self._make = make
    self._num_workers = num_workers
    self._layout = [int(x) for x in layout]  # (block, blocks) of each global batch.
    self._start(int(start_step))

  def _start(self, first_step: int, grain_state=None):
    self._first_step = self.step = first_step
    self._iterator = iter(self._make(first_step))  # Reads start at the first next().
    if grain_state is not None:
      self._iterator.set_state(grain_state)

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    batch = next(self._iterator)
    self.step += 1
    return batch

  def get_state(self) -> bytes:
    """JSON: the next step, the step the stream began at, the layout it
    was read with (worker count; block of the global batch and the number
    of blocks), Grain's state."""
    return json.dumps(
        {
            "step": self.step,
            "first_step": self._first_step,
            "num_workers": self._num_workers,
            "layout": self._layout,
            "grain": self._iterator.get_state(),
        }
    ).encode()

  def set_state(self, state: bytes | str) -> None:
    """Continues where `get_state` was taken.

    Grain's state belongs to one worker count and one share of the global
    batch; a run resumed with other workers, another number of processes or
    spatial groups (another block of each batch) is positioned by the step
    alone, which gives the same global examples: they are a function of
    (seed, step).
    """
    saved = json.loads(state)
    self.close()
    same = saved["num_workers"] == self._num_workers and saved.get("layout") == self._layout
    if same:
      self._start(int(saved["first_step"]), saved["grain"])
      self.step = int(saved["step"])
    else:
      self._start(int(saved["step"]))

  def start_prefetch(self) -> None:
    """Starts reading ahead now (Grain's checkpoint handler calls it)."""
    getattr(self._iterator, "start_prefetch", lambda: None)()

  def close(self) -> None:
    getattr(self._iterator, "close", lambda: None)()


def train_batches(
    data: DataConfig,
    task: task_lib.TaskConfig,
    rollout_steps: int,
    start_step: int,
    process_index: int | None = None,
    process_count: int | None = None,
) -> TrainIterator:
  """Host-local training batches for global steps start_step, start_step+1, ...

  Each holds global_batch_size / process_count examples; step s's examples
  depend only on (data.seed, s), so a restart resumes exactly.
  """
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top

    process_index, process_count = jax.process_index(), jax.process_count()

  def make(first_step):
    return train_dataset(data, task, rollout_steps, first_step, process_index, process_count)

  return TrainIterator(make, start_step, data.num_workers, (process_index, process_count))


def eval_batches(
    data: DataConfig, task: task_lib.TaskConfig, rollout_steps: int, num_batches: int
) -> list[Batch]:
  """Fixed global batches of the eval split, the same on every call and host."""
  load = LoadBatch(data, task, data.eval_split, rollout_steps, sources.provider(data.source))
  windows = pipeline.eval_windows(load.maker(), num_batches * data.global_batch_size)
  batches = grain.MapDataset.source(windows.reshape(num_batches, data.global_batch_size))
  reader = batches.map(load).to_iter_dataset(_options(data))
  return list(reader)
