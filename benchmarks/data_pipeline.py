"""Loader throughput against this machine's own limits, beside the model step.

  python benchmarks/data_pipeline.py        # demo 4 deg, 0.25 deg frame, 1 deg
  python benchmarks/data_pipeline.py --sizes 1:5:512:16 --model_sizes none   # loader alone
  python benchmarks/data_pipeline.py --sizes 1:5:512:16 --model_sizes none --num_workers 2

Each size is resolution:mesh:latent:message_steps (13 levels). For each, builds
a short synthetic_weather record in a temporary directory (at 0.25 deg, 1+1
days: 4 training frames, 357 MB each) and measures, in the same run:
  loader   the Grain training pipeline (`data.train_batches`, 1-step
           examples; reader threads, or --num_workers processes), in
           examples/s and GB/s of batch arrays delivered per host;
  memcpy   numpy copying one batch's worth of float32 (single thread), GB/s;
  read     reading the same array_record files from the page cache (after one
           warm-up read; single thread, into a reused buffer), GB/s;
  step     one jitted loss+gradient step (only for resolutions in
           --model_sizes: a 1 deg, latent 512 step takes minutes on this CPU);
           otherwise, where RESULTS.md has it (REFERENCE_STEP_S), the
           measured step time on this CPU is reused.
  loader_over_step: examples the loader delivers in one model step's time,
           per example the step trains (the issue asks for >= 5).
Each is timed in --rounds interleaved rounds and the best round kept (the
machine may be shared). The loader should reach half of min(memcpy, read). Prints a table, then one
JSON line per size
(the 1 deg line last).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

from absl import flags
import numpy as np

from graphcast_fdl import data
from graphcast_fdl import datasets  # noqa: F401  (registers synthetic_weather)
from graphcast_fdl import task as task_lib

# Seconds per train step (batch 1) measured on this CPU (RESULTS.md, model
# train step table): 1 deg / M5 / latent 512 / 16 steps, bfloat16, remat all.
REFERENCE_STEP_S = {1.0: (139.0, "RESULTS.md: M5/512/16 bf16 remat, batch 1")}


def _batch_bytes(batch) -> int:
  return sum(
      v.nbytes for part in (batch.inputs, batch.targets, batch.forcings) for v in part.values()
  )


def _time_loader(iterator, cfg, num_batches):
  """(examples/s, GB/s) of `num_batches` batches of a running iterator."""
  start = time.perf_counter()
  for _ in range(num_batches):
    batch = next(iterator)
  seconds = time.perf_counter() - start
  examples = num_batches * cfg.global_batch_size
  return examples / seconds, num_batches * _batch_bytes(batch) / seconds / 1e9


def _memcpy_gb_per_s(num_bytes, seconds=1.0):
  """Single-threaded numpy copy between two float32 buffers of `num_bytes`."""
  size = max(num_bytes // 4, 1 << 20)
  src, dst = np.ones(size, np.float32), np.empty(size, np.float32)
  np.copyto(dst, src)
  copies, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    np.copyto(dst, src)
    copies += 1
  return copies * src.nbytes / (time.perf_counter() - start) / 1e9


def _read_gb_per_s(paths, seconds=1.0):
  """Reads whole files (already in the page cache) into a reused buffer."""
  buffer = bytearray(64 << 20)
  view = memoryview(buffer)

  def read_all():
    total = 0
    for path in paths:
      with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
          total += n
    return total

  read_all()  # Warm the page cache.
  total, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    total += read_all()
  return total / (time.perf_counter() - start) / 1e9


def _time_step(cfg, task, batch, mesh, latent, steps, repeats=3):
  import jax  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top

  model = ModelConfig(
      resolution=cfg.resolution,
      mesh_size=mesh,
      latent_size=latent,
      gnn_msg_steps=steps,
      precision="float32",
  )
  predictor = Predictor(model, task, data.normalization_stats(cfg, task))
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  step = jax.jit(jax.value_and_grad(lambda p, b: predictor.loss(p, b)[0]))
  jax.block_until_ready(step(params, batch))
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(step(params, batch))
  return repeats * cfg.global_batch_size / (time.perf_counter() - start)


def _measure(size, args, task, tmp):
  res, mesh, latent, steps = size.split(":")
  resolution = float(res)
  small = resolution < 0.5  # A 0.25 deg frame is 357 MB: keep the record short.
  cfg = data.DataConfig(
      resolution=resolution,
      data_dir=tmp,
      synthetic_days=(1, 1) if small else (3, 1),
      global_batch_size=1 if small else args.batch,
      prefetch=2 if small else 4,
      num_workers=args.num_workers,
  )
  start = time.perf_counter()
  data.prepare(cfg, task)
  frames = data.split_frames(cfg, task, "train")
  build_s = (time.perf_counter() - start) / len(frames)
  num_batches = max(args.num_batches // (8 if small else 1), 3)
  paths = sorted(
      glob.glob(os.path.join(tmp, "synthetic_weather", "*", "*", "*-train.array_record*"))
  )
  iterator = data.train_batches(cfg, task, 1, 0, 0, 1)
  batch = next(iterator)  # Opens the split, starts the reader threads (workers).
  # Rounds interleaved, best of each kept: on a shared machine the three
  # figures are then taken under the same conditions.
  loader, memcpy, read = [], [], []
  for _ in range(args.rounds):
    loader.append(_time_loader(iterator, cfg, num_batches))
    memcpy.append(_memcpy_gb_per_s(_batch_bytes(batch), 0.5))
    read.append(_read_gb_per_s(paths, 0.5))
  iterator.close()
  examples_per_s, loader_gb = max(loader)
  row = dict(
      size=size,
      resolution=resolution,
      levels=len(task.pressure_levels),
      batch=cfg.global_batch_size,
      build_s_per_frame=build_s,
      example_mb=_batch_bytes(batch) / cfg.global_batch_size / 1e6,
      examples_per_s=examples_per_s,
      loader_gb_per_s=loader_gb,
      memcpy_gb_per_s=max(memcpy),
      read_gb_per_s=max(read),
  )
  row["loader_over_limit"] = loader_gb / min(row["memcpy_gb_per_s"], row["read_gb_per_s"])
  if res in args.model_sizes.split(","):
    row["model"] = f"mesh {mesh} latent {latent} steps {steps} (measured)"
    row["step_examples_per_s"] = _time_step(cfg, task, batch, int(mesh), int(latent), int(steps))
  elif resolution in REFERENCE_STEP_S:
    seconds, where = REFERENCE_STEP_S[resolution]
    row["model"] = where
    row["step_examples_per_s"] = 1.0 / seconds
  if "step_examples_per_s" in row:
    row["loader_over_step"] = examples_per_s / row["step_examples_per_s"]
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="4:3:32:4,0.25:6:512:16,1:5:512:16")
  parser.add_argument("--model_sizes", default="4")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument(
      "--num_batches",
      type=int,
      default=20,
      help="batches per timed round (0.25 deg: 1/8 of it, at least 3)",
  )
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument(
      "--num_workers", type=int, default=0, help="Grain worker processes (data.num_workers)"
  )
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags.
  task = task_lib.task_13()
  rows = []
  columns = (
      "resolution",
      "batch",
      "example_mb",
      "examples_per_s",
      "loader_gb_per_s",
      "memcpy_gb_per_s",
      "read_gb_per_s",
      "loader_over_limit",
      "step_examples_per_s",
      "loader_over_step",
  )
  print(" | ".join(columns), flush=True)
  for size in args.sizes.split(","):
    with tempfile.TemporaryDirectory() as tmp:  # One size on disk at a time.
      row = _measure(size, args, task, tmp)
    rows.append(row)
    print(
        " | ".join(
            f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
            for c in columns
        ),
        flush=True,
    )
  rows.sort(key=lambda r: r["resolution"] == 1.0)  # The 1 deg line last.
  for row in rows:
    print(json.dumps(row))


if __name__ == "__main__":
  main()
