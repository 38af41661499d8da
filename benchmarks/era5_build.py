"""Time per frame of the ERA5 TFDS build, from a local WeatherBench-2-style store.

  python benchmarks/era5_build.py --resolution 1 --frames 8

Writes a zarr store of random fields in the WB2 layout (13 levels, 6-hourly),
then times `datasets/era5` building it into array_record. This is the CPU cost
of a build; a build from gs:// adds reading the store over the network
(README "Train on ERA5" combines the two).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl import grid
from graphcast_fdl.datasets.era5 import era5_dataset_builder as era5


def _store(path, resolution, num_frames):
  lat, lon = grid.grid_coords(resolution)
  times = pd.date_range("2018-01-01", periods=num_frames, freq="6h")
  rng = np.random.default_rng(0)
  levels = task_lib.PRESSURE_LEVELS_13
  shape = (len(lat), len(lon))
  ds = xr.Dataset(
      coords={"time": times, "level": list(levels), "latitude": lat[::-1], "longitude": lon}
  )
  for v in task_lib.ATMOSPHERIC:
    ds[v] = (
        ("time", "level", "latitude", "longitude"),
        rng.normal(size=(num_frames, len(levels)) + shape).astype("f4"),
    )
  for v in task_lib.SURFACE_TARGETS + (task_lib.PRECIPITATION,):
    ds[v] = (("time", "latitude", "longitude"), rng.normal(size=(num_frames,) + shape).astype("f4"))
  for v in task_lib.STATIC:
    ds[v] = (("latitude", "longitude"), rng.random(shape).astype("f4"))
  # One chunk per time and variable, as WB2 stores are chunked.
  ds.chunk({"time": 1}).to_zarr(path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--resolution", type=float, default=1.0)
  parser.add_argument("--frames", type=int, default=8)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "era5.zarr")
    _store(path, args.resolution, args.frames)
    last = str(pd.Timestamp("2018-01-01") + pd.Timedelta(hours=6 * (args.frames - 1)))
    config = era5.Era5Config(
        name="bench",
        path=path,
        resolution=args.resolution,
        splits=(("train", f"2018-01-01/{last}"),),
    )
    start = time.perf_counter()
    era5.make_builder(config, os.path.join(tmp, "tfds")).download_and_prepare()
    seconds = time.perf_counter() - start
  print(
      f"resolution={args.resolution:g} frames={args.frames} "
      f"s_per_frame={seconds / args.frames:.3g}"
  )


if __name__ == "__main__":
  main()
