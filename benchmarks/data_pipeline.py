"""Loader throughput beside the training step that consumes it.

  python benchmarks/data_pipeline.py                     # demo: 4 deg, 13 levels
  python benchmarks/data_pipeline.py --sizes 4:3:32:4,1:5:512:16 --model_sizes 4

Each size is resolution:mesh:latent:message_steps. For each, builds a short
synthetic_weather record in a temporary directory, times (a) single-threaded
example assembly, (b) the prefetching `train_batches` iterator, and (c) one
jitted loss+gradient step of the model at that size (only for resolutions in
--model_sizes: a 1 deg, latent 512 step takes minutes on a laptop CPU). The
loader must deliver examples at least 5x faster than the step consumes them.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import numpy as np

from graphcast_fdl import data
from graphcast_fdl import task as task_lib
from graphcast_fdl.data import pipeline


def _time_loader(cfg, task, num_batches):
  maker = pipeline._maker(cfg, task, cfg.train_split, 1)  # pylint: disable=protected-access
  start = time.perf_counter()
  for i in range(num_batches):
    maker.batch(maker.starts[[i % len(maker.starts)] * cfg.global_batch_size])
  single = num_batches * cfg.global_batch_size / (time.perf_counter() - start)
  iterator = data.train_batches(cfg, task, 1, 0, 0, 1)
  next(iterator)
  start = time.perf_counter()
  for _ in range(num_batches):
    batch = next(iterator)
  prefetched = num_batches * cfg.global_batch_size / (time.perf_counter() - start)
  iterator.close()
  return single, prefetched, batch


def _time_step(cfg, task, batch, mesh, latent, steps, repeats=3):
  import jax  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top
  model = ModelConfig(resolution=cfg.resolution, mesh_size=mesh, latent_size=latent,
                      gnn_msg_steps=steps, precision="float32")
  predictor = Predictor(model, task, data.normalization_stats(cfg, task))
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  step = jax.jit(jax.value_and_grad(lambda p, b: predictor.loss(p, b)[0]))
  jax.block_until_ready(step(params, batch))
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(step(params, batch))
  return repeats * cfg.global_batch_size / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="4:3:32:4")
  parser.add_argument("--model_sizes", default="4")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--num_batches", type=int, default=20)
  args = parser.parse_args()
  task = task_lib.task_13()
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for size in args.sizes.split(","):
      res, mesh, latent, steps = size.split(":")
      cfg = data.DataConfig(resolution=float(res), data_dir=tmp, synthetic_days=(3, 1),
                            global_batch_size=args.batch, prefetch=4)
      start = time.perf_counter()
      data.prepare(cfg, task)
      build_s = time.perf_counter() - start
      single, prefetched, batch = _time_loader(cfg, task, args.num_batches)
      row = dict(resolution=float(res), levels=13, batch=args.batch,
                 build_s_per_frame=build_s / 16, loader_examples_per_s=single,
                 prefetch_examples_per_s=prefetched)
      if res in args.model_sizes.split(","):
        row["model"] = f"mesh {mesh} latent {latent} steps {steps}"
        row["step_examples_per_s"] = _time_step(cfg, task, batch, int(mesh),
                                                int(latent), int(steps))
        row["loader_over_step"] = single / row["step_examples_per_s"]
      rows.append(row)
      print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items()), flush=True)
  print(json.dumps(rows))


if __name__ == "__main__":
  main()
