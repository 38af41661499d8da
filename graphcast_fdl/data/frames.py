"""Random access to 6-hourly frames of a gridded dataset.

A frame is every variable at one time: atmospheric `[level, lat, lon]`, surface
`[lat, lon]`. Examples of any rollout length are cut from consecutive frames
at load time, so one stored dataset serves every training phase. Two kinds of
store give frames: a TFDS array_record dataset (one record per time, written
by the builders in `datasets/`) and an xarray store (WeatherBench-2 zarr or
netCDF, read in place: no conversion for stores too big to copy).
"""

from __future__ import annotations

import abc
import functools

import numpy as np
from tensorflow_datasets.proto import tf_example_pb2

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import record_source


class DataError(ValueError):
  """Bad or missing data; the message names the variable, level, time or file."""


class Frames(abc.ABC):
  """A time series of frames on one grid.

  Attributes:
    datetimes: [T] datetime64[s] of the frames, 6 h apart.
    lat: [H] ascending degrees. lon: [W] degrees in [0, 360).
    levels: [L] hPa of the atmospheric variables, as stored.
    atmospheric: variables with a level dim. surface: those without.
    statics: {name: [H, W]} time-invariant fields.
  """

  datetimes: np.ndarray
  lat: np.ndarray
  lon: np.ndarray
  levels: np.ndarray
  atmospheric: tuple[str, ...]
  surface: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.datetimes)

  @property
  def variables(self) -> tuple[str, ...]:
    return self.atmospheric + self.surface

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    """`frame(index)`: with `__len__`, Grain's `RandomAccessDataSource`
    protocol, so any frames (TFDS records, a zarr store read through
    tensorstore) are a Grain source: `grain.MapDataset.source(frames)`."""
    if not 0 <= int(index) < len(self):
      raise IndexError(f"frame {index} of {len(self)}")
    return self.frame(int(index))

  @property
  @abc.abstractmethod
  def statics(self) -> dict[str, np.ndarray]:
    ...

  @abc.abstractmethod
  def frame(self, index: int) -> dict[str, np.ndarray]:
    """{variable: float32 array} at `datetimes[index]`."""

  def frame_into(self, index: int, out: dict[str, np.ndarray], level_index=None) -> None:
    """Writes the variables named in `out` at `datetimes[index]` into `out`.

    Args:
      index: frame index.
      out: {variable: float32 array to fill}, atmospheric `[levels, lat, lon]`
        (the levels picked by `level_index`), surface `[lat, lon]`.
      level_index: positions of the wanted levels in `levels` (None: all).
    """
    frame = self.frame(index)
    for name, dest in out.items():
      value = frame[name]
      if level_index is not None and name in self.atmospheric:
        value = value[level_index]
      dest[...] = value

  def level_indices(self, levels) -> np.ndarray:
    """Positions of `levels` (hPa) in the stored level axis."""
    stored = [int(x) for x in self.levels]
    missing = [int(x) for x in levels if int(x) not in stored]
    if missing:
      raise DataError(f"pressure levels {missing} hPa are not in the data " f"(it has {stored})")
    return np.array([stored.index(int(x)) for x in levels])


class TfdsFrames(Frames):
  """Frames of one split of a TFDS array_record dataset written by our builders.

  The builders store one record per time in time order and describe the grid
  and times in the dataset's metadata, so nothing is scanned to open a split.
  """

  def __init__(self, builder, split: str):
    meta = builder.info.metadata
    if split not in meta["splits"]:
      raise DataError(
          f"split {split!r} is not in dataset {builder.info.full_name} "
          f"(it has {sorted(meta['splits'])})"
      )
    # Grain's data-source protocol over the split's files (our direct
    # reader where the layout allows).
    self.records = record_source.RecordSource(builder.info.splits[split].file_instructions)
    start = np.datetime64(meta["splits"][split]["start"], "s")
    count = meta["splits"][split]["num_frames"]
    if len(self.records) != count:
      raise DataError(
          f"{builder.info.full_name} split {split!r} holds "
          f"{len(self.records)} frames, its metadata says {count}"
      )
    self.datetimes = start + task_lib.TIME_STEP * np.arange(count)
    self.lat = np.asarray(meta["lat"], np.float32)
    self.lon = np.asarray(meta["lon"], np.float32)
    self.levels = np.asarray(meta["levels"], np.int32)
    self.atmospheric = tuple(meta["atmospheric"])
    self.surface = tuple(meta["surface"])
    self._static_names = tuple(meta["statics"])

  @functools.cached_property
  def statics(self) -> dict[str, np.ndarray]:
    if self.records.direct:
      out = {k: np.empty((len(self.lat), len(self.lon)), np.float32) for k in self._static_names}
      self.frame_into(0, out)
      return out
    record = self._raw(0)
    return {k: record[k] for k in self._static_names}

  def _raw(self, index: int) -> dict[str, np.ndarray]:
    """All fields of a record, parsed straight from its bytes.

    TFDS's own decoding copies every array twice (~2x slower at 4 deg).
    """
    example = tf_example_pb2.Example.FromString(self.records[int(index)])
    feature = example.features.feature
    num_levels, num_lat, num_lon = len(self.levels), len(self.lat), len(self.lon)
    out = {"datetime": feature["datetime"].int64_list.value[0]}
    for name in self.variables + self._static_names:
      shape = ((num_levels,) if name in self.atmospheric else ()) + (num_lat, num_lon)
      out[name] = np.frombuffer(feature[name].bytes_list.value[0], np.float32).reshape(shape)
    return out

  def frame_into(self, index: int, out: dict[str, np.ndarray], level_index=None) -> None:
    """See `Frames.frame_into`: one copy, from the file into `out`."""
    if not self.records.direct:
      return super().frame_into(index, out, level_index)
    file, local = self.records.locate(int(index))
    fields = file.fields(local)
    stored = file.int64(fields["datetime"])
    if stored != int(self.datetimes[index].astype(np.int64)):
      raise DataError(
          f"record {index} holds time {stored} s, expected "
          f"{self.datetimes[index]}: the split is out of order"
      )
    plane = len(self.lat) * len(self.lon) * 4
    for name, dest in out.items():
      start, size = fields[name]
      levels = len(self.levels) if name in self.atmospheric else 1
      if size != levels * plane or dest.dtype != np.float32 or not dest.flags.c_contiguous:
        raise DataError(
            f"record {index} field {name}: {size} bytes, expected "
            f"{levels * plane} ({file.path})"
        )
      view = memoryview(dest).cast("B")
      if level_index is None or name not in self.atmospheric:
        file.read_into(start, view)
      else:
        for j, level in enumerate(level_index):
          file.read_into(start + int(level) * plane, view[j * plane : (j + 1) * plane])

  def frame(self, index: int) -> dict[str, np.ndarray]:
    if self.records.direct:
      shape = (len(self.lat), len(self.lon))
      out = {
          k: np.empty(((len(self.levels),) if k in self.atmospheric else ()) + shape, np.float32)
          for k in self.variables
      }
      self.frame_into(index, out)
      return out
    record = self._raw(index)
    expected = self.datetimes[index].astype(np.int64)
    if int(record["datetime"]) != int(expected):
      raise DataError(
          f"record {index} holds time {record['datetime']} s, "
          f"expected {self.datetimes[index]}: the split is out of order"
      )
    return {k: record[k] for k in self.variables}
