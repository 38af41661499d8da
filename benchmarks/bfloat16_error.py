"""Error that shipping frames as bfloat16 adds, in the model's own units.

  python benchmarks/bfloat16_error.py                 # 1 deg synthetic_weather, 13 levels
  python benchmarks/bfloat16_error.py --resolution 4

bfloat16 keeps 8 significant bits: rounding moves a value by up to 2^-9 of
itself. What matters is that error over the scale the model sees: the
standard deviation for inputs, and for residual targets the standard
deviation of 6-hourly differences (`diffs_stddev`), which is much smaller
than the value itself (a 250 K temperature changes by ~1 K in 6 h). Prints,
per variable, the RMS and max rounding error over a few frames in both units.
"""

from __future__ import annotations

import argparse
import tempfile

import ml_dtypes
import numpy as np

from graphcast_fdl import data
from graphcast_fdl import task as task_lib


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--resolution", type=float, default=1.0)
  parser.add_argument("--frames", type=int, default=8)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args()
  task = task_lib.task_13()
  with tempfile.TemporaryDirectory() as tmp:
    cfg = data.DataConfig(
        resolution=args.resolution, data_dir=args.data_dir or tmp, synthetic_days=(3, 1)
    )
    data.prepare(cfg, task)
    frames = data.split_frames(cfg, task, "train")
    stats = data.normalization_stats(cfg, task)
    print("variable | rms/stddev | max/stddev | rms/diffs_stddev | max/diffs_stddev")
    worst = {}
    for name in frames.variables:
      values = np.stack([frames.frame(i)[name] for i in range(min(args.frames, len(frames)))])
      error = values.astype(ml_dtypes.bfloat16).astype(np.float32) - values
      row = []
      for field in ("stddev", "diffs_stddev"):
        scale = np.asarray(getattr(stats, field)[name].values, np.float32)
        if values.ndim == 4:
          scale = scale[None, :, None, None]
        scaled = np.abs(error) / scale
        row += [float(np.sqrt(np.mean(scaled**2))), float(scaled.max())]
      worst[name] = row
      print(f"{name} | " + " | ".join(f"{x:.2e}" for x in row))
    print("largest rms/diffs_stddev:", max(worst.items(), key=lambda kv: kv[1][2]))


if __name__ == "__main__":
  main()
