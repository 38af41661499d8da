"""Times one GraphCast training step (loss + grad + AdamW) on this machine.

  python benchmarks/model_step.py                      # 4 deg, M3, latent 32, 4 steps, f32
  python benchmarks/model_step.py --resolution=2 --mesh_size=4 --latent_size=64 \
      --gnn_msg_steps=8 --precision=bfloat16
  python benchmarks/model_step.py --resolution=1 --mesh_size=5 --latent_size=512 \
      --gnn_msg_steps=16                               # 1 deg: remat on (auto)

Random data in the task_13 layout (13 levels) and unit statistics; graphs from
the disk cache. Prints compile time, the median step time over --steps timed
steps (after one warm-up), and XLA's peak memory for the compiled step
(`compiled.memory_analysis()`), then one JSON line with the same figures.
The published implementation took 78 ms (4 deg/M3/latent 32/4 steps, f32) and
846 ms (2 deg/M4/latent 64/8 steps, bf16) per step on the 2-core CPU of the
golden runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np
import optax
import xarray as xr

from graphcast_fdl import graph
from graphcast_fdl import task as task_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.model.predictor import Predictor

# Above this many grid-node latent activations per batch element, "auto"
# turns on remat and edge blocking (the 1 deg / latent 512 model needs them
# to fit 24 GB; small models are faster without).
AUTO_REMAT_ACTIVATIONS = 2e7


def unit_stats(task) -> NormalizationStats:
  names = sorted(set(task.input_variables + task.target_variables))
  levels = list(task.pressure_levels)

  def dataset(value):
    return xr.Dataset(
        {
            n: (("level",), np.full(len(levels), value, np.float32))
            if task_lib.has_levels(n)
            else ((), np.float32(value))
            for n in names
        },
        coords={"level": levels},
    )

  return NormalizationStats(mean=dataset(0.0), stddev=dataset(1.0), diffs_stddev=dataset(1.0))


def random_batch(task, graphs, batch: int, rollout: int) -> Batch:
  rng = np.random.default_rng(0)
  n_lat, n_lon = len(graphs.grid_lat), len(graphs.grid_lon)
  levels = task.num_levels

  def array(name, frames):
    if name in task_lib.STATIC:
      shape = (batch, n_lat, n_lon)
    elif name.startswith("year_progress"):
      shape = (batch, frames)
    elif name.startswith("day_progress"):
      shape = (batch, frames, n_lon)
    elif task_lib.has_levels(name):
      shape = (batch, frames, levels, n_lat, n_lon)
    else:
      shape = (batch, frames, n_lat, n_lon)
    return rng.standard_normal(shape, np.float32)

  make = lambda names, frames: {n: array(n, frames) for n in names}
  return Batch(
      inputs=make(task.input_variables, 2),
      targets=make(task.target_variables, rollout),
      forcings=make(task.forcing_variables, rollout),
  )


def model_config(args, num_grid_nodes: int) -> ModelConfig:
  remat = args.remat
  if remat == "auto":
    big = num_grid_nodes * args.latent_size > AUTO_REMAT_ACTIVATIONS
    remat = "all" if big else "none"
  if remat == "all":
    remat_config = RematConfig(rollout_step=True, processor_every_k=1, encoder_decoder=True)
    block = args.edge_block_size or 32768
  else:
    remat_config = RematConfig()
    block = args.edge_block_size
  return ModelConfig(
      resolution=args.resolution,
      mesh_size=args.mesh_size,
      latent_size=args.latent_size,
      gnn_msg_steps=args.gnn_msg_steps,
      precision=args.precision,
      remat=remat_config,
      edge_block_size=block,
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=float, default=4.0)
  parser.add_argument("--mesh_size", type=int, default=3)
  parser.add_argument("--latent_size", type=int, default=32)
  parser.add_argument("--gnn_msg_steps", type=int, default=4)
  parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--rollout", type=int, default=1)
  parser.add_argument("--steps", type=int, default=10, help="timed steps after one warm-up step")
  parser.add_argument(
      "--remat",
      default="auto",
      choices=("auto", "none", "all"),
      help="all: remat rollout steps, each processor step and "
      "the encoder/decoder, and block encoder/decoder edges",
  )
  parser.add_argument("--edge_block_size", type=int, default=None)
  args = parser.parse_args()

  task = task_lib.task_13()
  start = time.perf_counter()
  probe = ModelConfig(resolution=args.resolution, mesh_size=args.mesh_size)
  graphs = graph.graphs_for_model(probe)
  graph_s = time.perf_counter() - start
  model = model_config(args, len(graphs.grid_lat) * len(graphs.grid_lon))
  predictor = Predictor(model, task, unit_stats(task), graphs)
  batch = jax.device_put(random_batch(task, graphs, args.batch, args.rollout))
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  optimizer = optax.adamw(1e-3, b1=0.9, b2=0.95, weight_decay=0.1)
  opt_state = optimizer.init(params)

  def train_step(params, opt_state, batch):
    (loss, _), grads = jax.value_and_grad(predictor.loss, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  # Live at once: arguments (params, optimizer state, batch), outputs not
  # aliased to donated arguments, and XLA's temporaries.
  peak = (
      memory.argument_size_in_bytes
      + memory.output_size_in_bytes
      - memory.alias_size_in_bytes
      + memory.temp_size_in_bytes
  )

  params, opt_state, loss = compiled(params, opt_state, batch)
  loss.block_until_ready()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    params, opt_state, loss = compiled(params, opt_state, batch)
    loss.block_until_ready()
    times.append(time.perf_counter() - start)
  if not np.isfinite(float(loss)):
    raise SystemExit(f"loss is not finite: {loss}")

  step_ms = 1000 * float(np.median(times))
  sizes = graphs.sizes()
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  print(
      f"model: {args.resolution} deg ({sizes['grid_lat']}x{sizes['grid_lon']})"
      f", mesh {args.mesh_size}, latent {args.latent_size}, "
      f"{args.gnn_msg_steps} msg steps, {args.precision}, batch {args.batch},"
      f" rollout {args.rollout}, remat {model.remat}, edge blocks "
      f"{model.edge_block_size}; {num_params:,} params"
  )
  print(f"graph (cached) {graph_s:.2f} s, compile {compile_s:.2f} s")
  print(
      f"train step median {step_ms:.1f} ms over {args.steps} "
      f"(min {1000 * min(times):.1f}, max {1000 * max(times):.1f})"
  )
  print(
      f"XLA peak memory {peak / 2**30:.3f} GiB (temp "
      f"{memory.temp_size_in_bytes / 2**30:.3f} GiB, arguments "
      f"{memory.argument_size_in_bytes / 2**30:.3f} GiB)"
  )
  print(
      json.dumps(
          dict(
              resolution=args.resolution,
              mesh_size=args.mesh_size,
              latent_size=args.latent_size,
              gnn_msg_steps=args.gnn_msg_steps,
              precision=args.precision,
              batch=args.batch,
              rollout=args.rollout,
              remat=args.remat,
              edge_block_size=model.edge_block_size,
              num_params=num_params,
              compile_s=round(compile_s, 3),
              step_ms_median=round(step_ms, 2),
              step_ms_all=[round(1000 * t, 2) for t in times],
              peak_bytes=int(peak),
              temp_bytes=int(memory.temp_size_in_bytes),
              devices=str(jax.devices()),
              machine=platform.machine(),
          )
      )
  )


if __name__ == "__main__":
  main()
