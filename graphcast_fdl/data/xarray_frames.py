"""Frames read in place from a WeatherBench-2-style zarr store or netCDF file.

Accepted layouts: dims (time, level, latitude|lat, longitude|lon) with a
datetime `time` (WB2 / ARCO stores, hourly or 6-hourly), or the published
example layout (batch, time as timedeltas, a `datetime` coordinate), whose
batch rows become consecutive segments. Opening checks the grid, the levels,
the variables, their units (converted where a conversion is known) and the
6-hourly spacing; NaN, Inf and unmasked fill values are checked on every frame
read (a terabyte store cannot be scanned up front). Every failure is a
`DataError` naming the variable, level, time or path (see `validation`).
Remote stores (gs://, any fsspec protocol) open through fsspec. A zarr
store on a local disk is opened and checked here but its frames are read with
tensorstore (`tensorstore_frames`), by the positions the checks selected.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import grid as grid_lib
from graphcast_fdl import task as task_lib
from graphcast_fdl.data import forcings as forcings_lib
from graphcast_fdl.data import tensorstore_frames
from graphcast_fdl.data import validation
from graphcast_fdl.data.frames import DataError, Frames

# Stored dim names -> ours (`_standardise`); a coordinate named POSITION + the
# stored dim name carries each selected element's position in the store.
_DIM_NAMES = {
    "latitude": "lat",
    "longitude": "lon",
    "pressure_level": "level",
    "isobaricInhPa": "level",
}
POSITION = "_position_in_store_"

# Time ranges of the published recipe (ERA5: train 1979-2017, validate 2018+).
SPLITS = {
    "train": ("1979-01-01T00", "2017-12-31T18"),
    "validation": ("2018-01-01T00", "2018-12-31T18"),
    "test": ("2019-01-01T00", "2019-12-31T18"),
    "all": (None, None),
}


def split_range(split: str) -> tuple:
  """(start, end) datetimes, inclusive, of a named split or "START/END"."""
  if split in SPLITS:
    return SPLITS[split]
  if "/" in split:
    start, _, end = split.partition("/")
    return (start or None, end or None)
  raise DataError(f"split {split!r}: use one of {sorted(SPLITS)} or 'START/END' datetimes")


def open_store(path: str) -> xr.Dataset:
  """Opens a zarr store or netCDF file lazily; names the path if absent."""
  is_remote = "://" in path
  if not is_remote and not os.path.exists(path):
    raise DataError(f"data store not found: {path}")
  try:
    if path.rstrip("/").endswith(".zarr") or (not is_remote and os.path.isdir(path)):
      return xr.open_zarr(path, chunks=None)
    return xr.open_dataset(path)
  except (OSError, ValueError, KeyError) as e:
    raise DataError(f"cannot open data store {path}: {e}") from e
  except ImportError as e:  # fsspec names the missing filesystem package.
    raise DataError(
        f"cannot open data store {path}: {e} "
        "(for gs:// stores: pip install 'graphcast_fdl[gcs]')"
    ) from e


def _standardise(ds: xr.Dataset) -> xr.Dataset:
  """lat/lon/level names, ascending lat and lon in [0, 360), datetime time axis."""
  ds = ds.rename(
      {
          k: v
          for k, v in (("latitude", "lat"), ("longitude", "lon"))
          if k in ds.dims or k in ds.coords
      }
  )
  for name in ("pressure_level", "isobaricInhPa"):  # WB2's newer stores; GRIB.
    if name in ds.dims and "level" not in ds.dims:
      ds = ds.rename({name: "level"})
  for dim in ("time", "lat", "lon"):
    if dim not in ds.dims:
      raise DataError(f"data has no {dim!r} dimension (dims: {sorted(ds.dims)})")
  if "batch" in ds.dims:  # The published example layout: rows are segments.
    if "datetime" not in ds.coords:
      raise DataError("data with a 'batch' dim needs a 'datetime' coordinate")
    rows = []
    for b in range(ds.sizes["batch"]):
      row = ds.isel(batch=b)
      row = row.assign_coords(time=row.coords["datetime"].values).drop_vars("datetime")
      rows.append(row)
    ds = xr.concat(
        rows, dim="time", data_vars="minimal", coords="minimal", compat="override", join="override"
    )
  elif "datetime" in ds.coords:
    ds = ds.assign_coords(time=ds.coords["datetime"].values).drop_vars("datetime")
  if not np.issubdtype(ds.time.dtype, np.datetime64):
    raise DataError("the 'time' coordinate is not datetimes and there is no 'datetime'")
  if ds.lat.size > 1 and ds.lat.values[0] > ds.lat.values[-1]:
    ds = ds.isel(lat=slice(None, None, -1))
  if ds.lon.values.min() < 0:
    ds = ds.assign_coords(lon=ds.lon.values % 360)
  if ds.lon.size > 1 and np.any(np.diff(ds.lon.values) < 0):  # Else mirrored.
    ds = ds.sortby("lon")
  return ds


def _check_grid(ds, resolution, include_poles):
  """Regular grid of the requested spacing (or a multiple: subsampled)."""
  for dim in ("lat", "lon"):
    if not grid_lib.is_regular(ds[dim].values):
      raise DataError(
          f"{dim} grid is not regular: spacings "
          f"{sorted(set(np.round(np.diff(ds[dim].values), 4)))[:5]}"
      )
  spacing = float(abs(ds.lon.values[1] - ds.lon.values[0]))
  stride = resolution / spacing
  if abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
    raise DataError(f"grid spacing {spacing} deg cannot give resolution {resolution} deg")
  stride = round(stride)
  has_poles = np.isclose(ds.lat.values[0], -90.0)
  if has_poles != include_poles:
    raise DataError(
        f"lat grid {'has' if has_poles else 'lacks'} poles, " f"include_poles={include_poles}"
    )
  ds = ds.isel(lat=slice(None, None, stride), lon=slice(None, None, stride))
  lat, lon = grid_lib.grid_coords(resolution, include_poles)
  if ds.sizes["lat"] != len(lat) or ds.sizes["lon"] != len(lon):
    raise DataError(
        f"grid {ds.sizes['lat']}x{ds.sizes['lon']} is not the global "
        f"{len(lat)}x{len(lon)} grid at {resolution} deg"
    )
  validation.check_coords("lat", ds.lat.values, lat, resolution)
  validation.check_coords("lon", ds.lon.values, lon, resolution)
  return ds


class XarrayFrames(Frames):
  """Frames of a time range of an xarray dataset, checked on opening."""

  def __init__(self, ds: xr.Dataset, variables, levels, segment_starts=(), source="", arrays=None):
    """`arrays`: (tensorstore_frames.ZarrArrays, {variable: stored dims}) to
    read frames with tensorstore by the POSITION coordinates of `ds`."""
    self._ds = ds
    self._arrays = arrays
    self._source_name = source
    self.datetimes = ds.time.values.astype("datetime64[s]")
    self.lat = ds.lat.values.astype(np.float32)
    self.lon = ds.lon.values.astype(np.float32)
    self.levels = np.asarray(levels, np.int32)
    self.atmospheric = tuple(v for v in variables if "level" in ds[v].dims)
    self.surface = tuple(v for v in variables if "level" not in ds[v].dims)
    self._segment_starts = segment_starts
    # Stored units -> expected units (e.g. degC -> K), per variable.
    self._convert = {}
    for name in tuple(variables) + tuple(n for n in task_lib.STATIC if n in ds):
      scale, offset = validation.unit_conversion(name, ds[name].attrs.get("units"), source)
      if (scale, offset) != (1.0, 0.0):
        self._convert[name] = (np.float32(scale), np.float32(offset))

  @functools.cached_property
  def statics(self):
    out = {}
    for name in task_lib.STATIC:
      if name in self._ds:
        var = self._ds[name]
        if "time" in var.dims:
          var = var.isel(time=0)
        out[name] = self._checked(name, var.transpose("lat", "lon").values, None)
    return out

  def _checked(self, name, values, index):
    """float32 values in the expected units; NaN, Inf and fill values named."""
    values = np.ascontiguousarray(values, np.float32)
    validation.check_values(
        name,
        values,
        self.levels,
        None if index is None else self.datetimes[index],
        self._source_name,
    )
    if name in self._convert:
      scale, offset = self._convert[name]
      values = values * scale + offset  # A copy: never the store's array.
    return values

  def _read_direct(self, index: int):
    arrays, stored_dims = self._arrays
    out = {}
    for name in self.variables:
      dims = stored_dims[name]
      positions = tuple(self._ds[POSITION + d].values for d in dims)
      positions = tuple(p[int(index)] if d == "time" else p for p, d in zip(positions, dims))
      values = arrays.read(name, positions)
      ours = [_DIM_NAMES.get(d, d) for d in dims if d != "time"]
      wanted = (("level",) if "level" in ours else ()) + ("lat", "lon")
      out[name] = self._checked(name, values.transpose([ours.index(d) for d in wanted]), index)
    return out

  def frame(self, index: int):
    if self._arrays is not None:
      return self._read_direct(index)
    row = self._ds.isel(time=int(index))
    out = {}
    for name in self.variables:
      var = row[name]
      dims = (("level",) if "level" in var.dims else ()) + ("lat", "lon")
      out[name] = self._checked(name, var.transpose(*dims).values, index)
    return out


def open_frames(
    path: str,
    split: str,
    task: task_lib.TaskConfig,
    resolution: float,
    include_poles: bool = True,
    variables=None,
    reader: str = "auto",
) -> XarrayFrames:
  """Opens `path`, selects a split's time range, checks it. See module doc.

  `reader`: "xarray", or "auto" to read the frames of a local zarr store
  with tensorstore (the same values: tests hold them equal).
  """
  store = open_store(path)
  direct = (
      reader == "auto"
      and tensorstore_frames.can_read(path)
      and "batch" not in store.dims
      and "datetime" not in store.coords
  )
  if direct:  # Where each selected element sits in the stored arrays.
    store = store.assign_coords({POSITION + d: (d, np.arange(n)) for d, n in store.sizes.items()})
  ds = _standardise(store)
  ds = _check_grid(ds, resolution, include_poles)
  derived = set(forcings_lib.PROGRESS) | set(task_lib.STATIC) | {forcings_lib.TOA}
  needed = variables or sorted(
      (set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables))
      - derived
  )
  missing = [v for v in needed if v not in ds.data_vars]
  if missing:
    raise DataError(f"variables {missing} are not in {path}")
  if variables is None and forcings_lib.TOA in ds.data_vars:
    needed = list(needed) + [forcings_lib.TOA]
  for name in task_lib.STATIC:
    if name in (set(task.input_variables) | set(variables or ())) and name not in ds:
      raise DataError(f"static field {name!r} is not in {path}")
  if any("level" in ds[v].dims for v in needed):
    stored = [int(x) for x in ds.level.values]
    absent = [int(x) for x in task.pressure_levels if int(x) not in stored]
    if absent:
      raise DataError(f"pressure levels {absent} hPa are not in {path} (it has {stored})")
    ds = ds.sel(level=list(task.pressure_levels))
  start, end = split_range(split)
  times = pd.DatetimeIndex(ds.time.values)
  keep = np.asarray(times.hour % task_lib.TIME_STEP_HOURS == 0) & np.asarray((times.minute == 0))
  if start is not None:
    keep &= np.asarray(times >= pd.Timestamp(start))
  if end is not None:
    keep &= np.asarray(times <= pd.Timestamp(end))
  if not keep.any():
    raise DataError(
        f"{path} has no 6-hourly times in split {split!r} "
        f"({start} .. {end}); it covers {times[0]} .. {times[-1]}"
    )
  ds = ds.isel(time=np.flatnonzero(keep))
  segments = ()
  raw = _standardise_segments(path)
  if raw:
    segments = tuple(i for i in raw if 0 < i < ds.sizes["time"])
  validation.check_times(ds.time.values.astype("datetime64[s]"), segments)
  statics = [n for n in task_lib.STATIC if n in ds]
  ds = ds[list(needed) + statics]
  arrays = None
  if direct:
    arrays = (
        tensorstore_frames.ZarrArrays(path, {n: store[n].encoding for n in needed}),
        {n: store[n].dims for n in needed},
    )
  return XarrayFrames(ds, needed, task.pressure_levels, segments, source=path, arrays=arrays)


def _standardise_segments(path):
  """Segment starts of the published example layout (batch rows)."""
  if path.endswith(".nc"):
    with xr.open_dataset(path) as raw:
      if "batch" in raw.dims:
        n = raw.sizes["time"]
        return tuple(range(n, n * raw.sizes["batch"], n))
  return ()
