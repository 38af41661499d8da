"""A zarr store's arrays read directly with tensorstore.

xarray (over zarr-python) decodes each frame through several layers of Python;
tensorstore reads the chunks a selection touches in C++ threads and returns
the selection as one array. `xarray_frames` still opens the store, checks and
selects it (grid, levels, split, units); what it selected is recorded as
positions in the stored arrays, and frames are read here by those positions.
Decoding follows what xarray would apply: stored fill values become NaN (so
the checks on every frame name them) and packed values are scaled.
"""

from __future__ import annotations

import os

import numpy as np
import tensorstore as ts

from graphcast_fdl.data.frames import DataError


def can_read(path: str) -> bool:
  """A zarr store on a local disk (other paths are read through fsspec)."""
  return "://" not in path and os.path.isdir(path)


def _open(url: str):
  errors = []
  for driver in ("zarr3", "zarr"):  # zarr format 3 (zarr-python 3's default), then 2.
    try:
      return ts.open({"driver": driver, "kvstore": url}, read=True).result()
    except ValueError as e:
      errors.append(f"{driver}: {e}")
  raise DataError(f"tensorstore cannot open {url} ({'; '.join(errors)})")


class ZarrArrays:
  """Variables of one zarr store, opened once, read by position.

  Args:
    path: the store (a local folder).
    encodings: {variable: xarray's encoding of it} (fill value, packing).
  """

  def __init__(self, path: str, encodings: dict[str, dict]):
    root = "file://" + os.path.abspath(path).rstrip("/") + "/"
    self._arrays = {name: _open(root + name + "/") for name in encodings}
    self._decode = {}
    for name, encoding in encodings.items():
      fill = encoding.get("_FillValue", encoding.get("missing_value"))
      self._decode[name] = (
          fill,
          np.float32(encoding.get("scale_factor", 1.0)),
          np.float32(encoding.get("add_offset", 0.0)),
      )

  def read(self, name: str, positions: tuple) -> np.ndarray:
    """float32 values of `name` at `positions` (per stored dim: an int, or
    sorted or reversed index arrays; ints drop their dim)."""
    index, flips = [], []
    for where in positions:
      if np.ndim(where) == 0:
        index.append(int(where))
        continue
      where = np.asarray(where)
      if len(where) > 1 and np.all(np.diff(where) < 0):  # Reversed: read ascending.
        where = where[::-1]
        flips.append(sum(np.ndim(i) > 0 or isinstance(i, slice) for i in index))
      step = int(where[1] - where[0]) if len(where) > 1 else 1
      if step > 0 and np.array_equal(where, np.arange(where[0], where[-1] + 1, step)):
        index.append(slice(int(where[0]), int(where[-1]) + 1, step))
      else:
        index.append(where)
    stored = self._arrays[name].oindex[tuple(index)].read().result()
    if flips:
      stored = np.flip(stored, axis=tuple(flips))
    fill, scale, offset = self._decode[name]
    values = stored.astype(np.float32)
    if (scale, offset) != (1.0, 0.0):
      values = values * scale + offset
    if fill is not None and not np.isnan(fill):
      values[stored == fill] = np.nan
    return values
