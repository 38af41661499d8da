"""A batch of examples written in place: each stored byte copied once.

Stacking frames into an example, then examples into a batch, copied every
byte twice more after reading it (and the library reader copied it twice
before): at 1 deg the loader ran at 6 % of this machine's memcpy speed
(`benchmarks/RESULTS.md`). Here the batch arrays are allocated first and each
frame's variables are read straight into their slots (`Frames.frame_into`);
only the small derived forcings (progress features, TOA radiation when not
stored) are computed per example as `ExampleMaker.example` does.
`ExampleMaker.example` stays the reference: tests hold the two equal.
"""

from __future__ import annotations

import sys
import threading
import weakref

import numpy as np

from graphcast_fdl.data import forcings as forcings_lib
from graphcast_fdl.model.batch import Batch


def _derived(maker, datetimes) -> dict[str, np.ndarray]:
  """Time-dependent fields not read from frames, [T, ...] each."""
  out = dict(forcings_lib.progress_features(datetimes, maker.frames.lon))
  task = maker.task
  if forcings_lib.TOA not in maker.frames.variables and forcings_lib.TOA in (
      set(task.input_variables) | set(task.forcing_variables)
  ):
    out[forcings_lib.TOA] = maker._toa(datetimes)  # pylint: disable=protected-access
  return out


class _Pool:
  """Batch arrays handed out before, reused once nobody holds them.

  Writing into fresh memory costs a page fault per page (the kernel zeroes
  it): at 1 deg that halved the loader's speed. A set of arrays is reused
  only when its reference counts show that the pool alone holds it (a
  consumer's batch, a view, or a JAX array aliasing the host buffer all hold
  references), so a batch still in use is never overwritten.
  """

  def __init__(self, max_sets: int, max_bytes: int):
    self._sets = []
    self._max_sets = max_sets
    self._max_bytes = max_bytes
    self._lock = threading.Lock()

  @staticmethod
  def _unused(arrays) -> bool:
    # References: the set's dict, the loop variable, getrefcount's argument.
    return all(sys.getrefcount(a) <= 3 for a in arrays.values())

  def take(self, layout) -> dict:
    """{(part, name): array} of `layout`, reused if free, else new."""
    with self._lock:
      for held_layout, arrays in self._sets:
        if held_layout == layout and self._unused(arrays):
          return dict(arrays)
      arrays = {key: np.empty(shape, dtype) for key, shape, dtype in layout}
      held = sum(a.nbytes for _, s in self._sets for a in s.values())
      if (
          len(self._sets) < self._max_sets
          and held + sum(a.nbytes for a in arrays.values()) <= self._max_bytes
      ):
        self._sets.append((layout, arrays))
      return dict(arrays)


_POOLS = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()
# Enough for the prefetch queue (2-4), the batch in use and the one being
# loaded; at most 4 GiB held (three 0.25 deg 1-step examples).
POOL_SETS = 8
POOL_BYTES = 4 << 30


def _pool(maker) -> _Pool:
  with _POOLS_LOCK:
    if maker not in _POOLS:
      _POOLS[maker] = _Pool(POOL_SETS, POOL_BYTES)
    return _POOLS[maker]


def assemble(maker, starts) -> Batch:
  """The batch `ExampleMaker.batch(starts)` returns, read in place.

  Args:
    maker: an `examples.ExampleMaker` (its frames, task, window length).
    starts: [B] first-frame indices of the windows.
  """
  frames, task, n = maker.frames, maker.task, maker.num_inputs
  starts = [int(s) for s in starts]
  batch = len(starts)
  stored = set(frames.variables)
  statics = frames.statics
  level_index = None if maker._levels_identity else maker.level_index  # pylint: disable=protected-access
  grid = (len(frames.lat), len(frames.lon))
  num_levels = len(maker.level_index)
  parts = {
      "inputs": (task.input_variables, n),
      "targets": (task.target_variables, maker.rollout_steps),
      "forcings": (task.forcing_variables, maker.rollout_steps),
  }
  derived = [_derived(maker, frames.datetimes[s : s + maker.length]) for s in starts]
  layout, fill = [], {}
  for part, (names, steps) in parts.items():
    for name in names:
      if name in statics:
        layout.append(((part, name), (batch,) + grid, np.dtype(np.float32)))
        fill[part, name] = np.asarray(statics[name], np.float32)
      elif name in stored:
        shape = ((num_levels,) if name in frames.atmospheric else ()) + grid
        layout.append(((part, name), (batch, steps) + shape, np.dtype(np.float32)))
      else:  # Derived: small, computed per example.
        times = slice(0, n) if part == "inputs" else slice(n, None)
        value = np.stack([d[name][times] for d in derived])
        layout.append(((part, name), value.shape, value.dtype))
        fill[part, name] = value
  arrays = _pool(maker).take(tuple(layout))
  for key, value in fill.items():
    arrays[key][...] = value
  for b, start in enumerate(starts):
    for t in range(maker.length):
      wanted = ("inputs",) if t < n else ("targets", "forcings")
      row = t if t < n else t - n
      dest, copies = {}, []
      for part in wanted:
        for name in parts[part][0]:
          if name in stored and name not in statics:
            slot = arrays[part, name][b, row]
            if name in dest:
              copies.append((name, slot))
            else:
              dest[name] = slot
      if dest:
        frames.frame_into(start + t, dest, level_index)
      for name, slot in copies:
        slot[...] = dest[name]
  return Batch(
      **{part: {name: arrays[part, name] for name in names} for part, (names, _) in parts.items()}
  )
