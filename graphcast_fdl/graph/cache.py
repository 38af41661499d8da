"""On-disk cache of built graphs: one `.npz` per set of inputs.

The file name carries a hash of every input plus `FORMAT_VERSION`; bump the
version whenever the construction or the stored layout changes, so stale
files are never read. Files are written to a temporary name and renamed, so
concurrent builders and interrupted writes never leave a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1
ENV_VAR = "GRAPHCAST_FDL_CACHE"


class _Default:
  """Sentinel: use $GRAPHCAST_FDL_CACHE or ~/.cache/graphcast_fdl/graphs."""

  def __repr__(self):
    return "graph.DEFAULT"


DEFAULT = _Default()


def resolve_dir(cache_dir: str | os.PathLike | None | _Default) -> pathlib.Path | None:
  """The cache directory to use, or None for no caching."""
  if cache_dir is None:
    return None
  if isinstance(cache_dir, _Default):
    cache_dir = os.environ.get(ENV_VAR) or (
        pathlib.Path.home() / ".cache" / "graphcast_fdl" / "graphs"
    )
  return pathlib.Path(cache_dir).expanduser()


def key(inputs: dict) -> str:
  """Hex digest identifying `inputs` (a JSON-able dict) and the format."""
  blob = json.dumps({"format_version": FORMAT_VERSION, **inputs}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()


def path_for(directory: pathlib.Path, inputs: dict) -> pathlib.Path:
  """File holding the graphs for `inputs`; readable name, unique hash."""
  poles = "poles" if inputs.get("include_poles") else "nopoles"
  name = (
      f"graphs_{inputs.get('resolution')}deg_{poles}_"
      f"mesh{inputs.get('mesh_size')}_{key(inputs)[:16]}.npz"
  )
  return directory / name


def load(directory: pathlib.Path, inputs: dict) -> dict[str, np.ndarray] | None:
  """The cached arrays for `inputs`, or None on a miss or an unreadable file."""
  path = path_for(directory, inputs)
  try:
    with np.load(path, allow_pickle=False) as data:
      if str(data["cache_key"]) != key(inputs):
        return None
      return {name: data[name] for name in data.files if name != "cache_key"}
  except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
    return None


def save(directory: pathlib.Path, inputs: dict, arrays: dict[str, np.ndarray]) -> pathlib.Path:
  """Writes `arrays` atomically; returns the file written."""
  path = path_for(directory, inputs)
  directory.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.stem, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, cache_key=np.array(key(inputs)), **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path
