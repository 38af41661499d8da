"""Which examples each step sees, and loading them ahead of the accelerator.

The published recipe samples training windows uniformly with replacement.
Here the global batch of step `s` is drawn from a generator seeded by
`(seed, s)` alone, so a restart at step `s` sees exactly the examples it
would have seen, with no iterator state to checkpoint. Each host takes its
contiguous slice of the global batch: the union over hosts is the batch one
host would load.
"""

from __future__ import annotations

import concurrent.futures
import collections
import itertools
from typing import Callable, Iterator

import numpy as np


def step_indices(seed: int, step: int, num_choices: int, global_batch_size: int) -> np.ndarray:
  """[global_batch_size] indices in [0, num_choices) for global step `step`."""
  if num_choices < 1:
    raise ValueError("no complete window in the data: it is shorter than one example")
  rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(step)]))
  return rng.integers(0, num_choices, size=global_batch_size)


def host_slice(values: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
  """This host's contiguous share of a global batch."""
  if len(values) % process_count:
    raise ValueError(
        f"global batch {len(values)} does not split over " f"{process_count} processes"
    )
  per_host = len(values) // process_count
  return values[process_index * per_host : (process_index + 1) * per_host]


def prefetched(
    load: Callable[[int], object], steps: Iterator[int], prefetch: int, workers: int = 2
) -> Iterator[object]:
  """Yields load(step) for each step in order, with `prefetch` loads in flight.

  Loading runs in threads: reading array_record and numpy copies release the
  GIL, so the training step (also GIL-free in XLA) overlaps them.
  """
  if prefetch <= 0:
    for step in steps:
      yield load(step)
    return
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
  pending = collections.deque()
  try:
    for step in itertools.islice(steps, prefetch):
      pending.append(pool.submit(load, step))
    for step in steps:
      pending.append(pool.submit(load, step))
      yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
  finally:
    for future in pending:
      future.cancel()
    try:
      pool.shutdown(wait=False, cancel_futures=True)
    except (AttributeError, TypeError):  # Interpreter exit: modules torn down.
      pass
