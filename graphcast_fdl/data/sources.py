"""The registry of data sources: what a `DataConfig.source` name opens.

A source turns a DataConfig (and the task) into frames of a split, makes sure
its data exists, and says where its normalisation statistics are cached. The
data layer registers the one it reads itself ("zarr": a WeatherBench-2-style
store read in place); the TFDS builders in `datasets/` sit above the data
layer and register theirs ("synthetic_weather", "era5") when imported, so the
data layer never imports them. Importing `graphcast_fdl.datasets` registers
them all; the commands and `experiments/` do that.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import frames as frames_lib
from graphcast_fdl.data.config import DataConfig

DataError = frames_lib.DataError


@dataclasses.dataclass(frozen=True)
class Source:
  """How to reach one kind of data.

  Attributes:
    frames: (data, task, split) -> the split's Frames.
    prepare: (data, task) -> None; builds or checks the data, raising a
      DataError naming what is missing.
    stats_dir: (data, task) -> folder where the train split's normalisation
      statistics are cached.
  """

  frames: Callable[[DataConfig, task_lib.TaskConfig, str], frames_lib.Frames]
  prepare: Callable[[DataConfig, task_lib.TaskConfig], None]
  stats_dir: Callable[[DataConfig, task_lib.TaskConfig], str]


_SOURCES: dict[str, Source] = {}


def register(name: str, source: Source) -> None:
  """Makes `DataConfig(source=name)` open `source` (re-registering replaces)."""
  _SOURCES[name] = source


def names() -> tuple[str, ...]:
  """Registered source names, sorted."""
  return tuple(sorted(_SOURCES))


def get(name: str) -> Source:
  """The source registered under `name`.

  Raises:
    DataError: naming `name` and the registered ones.
  """
  if name not in _SOURCES:
    raise DataError(
        f"data.source={name!r}: must be one of {names()} (the TFDS builders "
        "register theirs when graphcast_fdl.datasets is imported)"
    )
  return _SOURCES[name]


def provider(name: str) -> str:
  """The module that registers `name` (where its frames function lives)."""
  return get(name).frames.__module__


def get_in_worker(name: str, module: str) -> Source:
  """`get`, in a fresh process (a loader worker) where the builders were never
  imported: imports `module` (from `provider` in the parent) to register it."""
  if name not in _SOURCES:
    importlib.import_module(module)
  return get(name)
