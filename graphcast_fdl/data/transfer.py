"""The dtype batches travel to the device in: float32, or bfloat16 to halve
the bytes of inputs and forcings.

Measured by `benchmarks/bfloat16_error.py` (1 deg synthetic_weather, 13
levels; RESULTS.md): rounding raw values to bfloat16 (8 significant bits,
error up to 2^-9 of the value) moves them by an RMS of 1e-3 to 3e-2 standard
deviations for winds, humidity, precipitation, radiation and geopotential, but
0.12 for mean sea-level pressure and 0.14 for temperature, whose values are
large beside their spread. On residual targets the same rounding is 0.4 to 2.7
standard deviations of the 6-hourly differences for temperature, geopotential,
2 m temperature and pressure: useless. So only inputs and forcings are cast;
targets stay float32. Even on inputs it is 10-100x the rounding a bf16 model
applies to normalised inputs itself, and the cast runs at ~1 GB/s per core
here (slower than the loader): float32 stays the default until a run shows it
harmless where the host-to-device link, not the host CPU, is the limit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from graphcast_fdl.data.frames import DataError
from graphcast_fdl.model.batch import Batch

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}


def cast(batch: Batch, dtype: str) -> Batch:
  """`batch` with float32 inputs and forcings in `dtype` (targets untouched)."""
  if dtype not in DTYPES:
    raise DataError(f"data.transfer_dtype={dtype!r}: must be one of {sorted(DTYPES)}")
  if dtype == "float32":
    return batch

  def part(arrays):
    return {k: v.astype(DTYPES[dtype]) if v.dtype == np.float32 else v for k, v in arrays.items()}

  return Batch(inputs=part(batch.inputs), targets=batch.targets, forcings=part(batch.forcings))
