"""Memory, time and traffic of one example split over K devices (space axis).

  python benchmarks/spatial_parallel.py --spatial 4     # 4 deg, M3, latent 32
  python benchmarks/spatial_parallel.py --resolution 1 --mesh_size 5 \
      --latent_size 512 --gnn_msg_steps 16 --precision bfloat16 --spatial 4 \
      --steps 0                                         # compile only

Compiles loss + gradient of GraphCast unsplit (spatial 1: the plain
`Predictor`) and split K ways over virtual CPU devices (`SpatialPredictor`),
with random data in the task_13 layout, and prints per device: XLA's peak
(arguments + outputs + temporaries of the compiled program) and its
temporaries alone (the activation part), the median step time over --steps
runs (K virtual devices share this machine's cores, so it is no speed-up
figure), the bytes each device sends per step (halo rows, forward and
backward), the cut fraction of the partition, and the relative differences
of loss and gradients from spatial 1 (gradients: in the 2-norm over all
parameters, `max_rel_diff_grads`, and the largest over arrays of
max |diff| / max |value|). The split batch is placed in latitude bands as the
trainer places it. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=float, default=4.0)
  parser.add_argument("--mesh_size", type=int, default=3)
  parser.add_argument("--latent_size", type=int, default=32)
  parser.add_argument("--gnn_msg_steps", type=int, default=4)
  parser.add_argument("--spatial", type=int, default=4, help="devices sharing one example")
  parser.add_argument("--rollout", type=int, default=1)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument(
      "--steps",
      type=int,
      default=3,
      help="timed steps after one warm-up; 0: compile only " "(no times, no differences)",
  )
  parser.add_argument(
      "--remat", default="auto", choices=("auto", "none", "all"), help="as in model_step.py"
  )
  parser.add_argument("--edge_block_size", type=int, default=None)
  args = parser.parse_args()
  if args.spatial < 1:
    parser.error(f"--spatial={args.spatial}: must be >= 1")
  return args


ARGS = parse_args()
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count=" f"{ARGS.spatial}"
)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top,g-bad-import-order
import numpy as np  # pylint: disable=g-import-not-at-top
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top

import model_step  # pylint: disable=g-import-not-at-top
from graphcast_fdl import graph  # pylint: disable=g-import-not-at-top
from graphcast_fdl import task as task_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.predictor import Predictor  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.spatial import SpatialPredictor  # pylint: disable=g-import-not-at-top

MiB = 2**20


def rel_diff(a, b) -> float:
  """|a - b| / |b| in the 2-norm over all leaves."""
  flat = lambda t: np.concatenate([np.ravel(x).astype(np.float64) for x in jax.tree.leaves(t)])
  a, b = flat(a), flat(b)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def max_array_rel_diff(a, b) -> float:
  """The largest over arrays of max |a - b| / max |b| (as tests/test_spatial.py)."""
  return float(
      max(
          np.abs(np.asarray(x, np.float64) - y).max() / max(np.abs(np.asarray(y)).max(), 1e-30)
          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
      )
  )


def measure(predictor, mesh, params, batch, steps: int) -> dict:
  """Compiles loss + grad; its memory, median time and results. A split
  predictor's batch is placed as the trainer places it (`place_batch`:
  each device holds its latitude band), the unsplit one's whole."""
  replicated = NamedSharding(mesh, P())
  batch_shardings = replicated
  if hasattr(predictor, "place_batch"):
    batch, batch_shardings = predictor.place_batch(batch)
  step = jax.jit(
      jax.value_and_grad(lambda p, b: predictor.loss(p, b)[0]),
      in_shardings=(replicated, batch_shardings),
  )
  start = time.perf_counter()
  compiled = step.lower(params, batch).compile()
  out = {"compile_s": time.perf_counter() - start}
  memory = compiled.memory_analysis()
  out["peak"] = (
      memory.argument_size_in_bytes
      + memory.output_size_in_bytes
      - memory.alias_size_in_bytes
      + memory.temp_size_in_bytes
  )
  out["temp"] = memory.temp_size_in_bytes
  out["step_s"] = out["loss"] = out["grads"] = None
  if steps:
    params, batch = jax.device_put(params, replicated), jax.device_put(batch, batch_shardings)
    loss, grads = compiled(params, batch)
    jax.block_until_ready(grads)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      jax.block_until_ready(compiled(params, batch))
      times.append(time.perf_counter() - start)
    out.update(step_s=float(np.median(times)), loss=loss, grads=grads)
  return out


def main() -> None:
  args, k = ARGS, ARGS.spatial
  task = task_lib.task_13()
  graphs = graph.graphs_for_model(ModelConfig(resolution=args.resolution, mesh_size=args.mesh_size))
  model = model_step.model_config(args, graphs.num_grid_nodes)
  stats = model_step.unit_stats(task)
  batch = model_step.random_batch(task, graphs, args.batch, args.rollout)
  devices = np.asarray(jax.devices()[:k])
  one = Predictor(model, task, stats, graphs)
  split = SpatialPredictor(model, task, stats, graphs, mesh=Mesh(devices, ("space",)))
  params = one.init_params(jax.random.PRNGKey(0))
  results = {1: measure(one, Mesh(devices[:1], ("space",)), params, batch, args.steps)}
  results[k] = measure(split, split.mesh, params, batch, args.steps)
  exchanged = split.exchanged_bytes_per_step(args.batch, args.rollout)
  cut = split.partition.cut_fraction
  diff_loss = diff_grads = diff_arrays = None
  if args.steps:
    diff_loss = rel_diff(results[k]["loss"], results[1]["loss"])
    diff_grads = rel_diff(results[k]["grads"], results[1]["grads"])
    diff_arrays = max_array_rel_diff(results[k]["grads"], results[1]["grads"])

  print(
      f"model: {args.resolution} deg, mesh {args.mesh_size}, latent "
      f"{args.latent_size}, {args.gnn_msg_steps} msg steps, "
      f"{args.precision}, batch {args.batch}, rollout {args.rollout}, "
      f"remat {model.remat}, edge blocks {model.edge_block_size}; split: edge blocks "
      f"{split.model.edge_block_size}, grid blocks {split.model.remat.grid_block_size} "
      "(scaled to the parts)"
  )
  print(
      "halo rows per part: "
      + ", ".join(f"{name} {e.halo_size}" for name, e in split.partition.edge_sets().items())
      + f"; rows per part: grid {split.partition.grid.size}, mesh "
      f"{split.partition.mesh.size}"
  )
  print(
      f"{'spatial':>7s} {'peak MiB/dev':>12s} {'temp MiB/dev':>12s} "
      f"{'compile s':>9s} {'step s':>7s} {'sent MiB/dev':>12s} "
      f"{'cut':>6s}"
  )
  for n, r in results.items():
    step_s = "-" if r["step_s"] is None else f"{r['step_s']:.3f}"
    print(
        f"{n:7d} {r['peak'] / MiB:12.1f} {r['temp'] / MiB:12.1f} "
        f"{r['compile_s']:9.1f} {step_s:>7s} "
        f"{(exchanged if n > 1 else 0) / MiB:12.2f} "
        f"{(cut if n > 1 else 0.0):6.3f}"
    )
  print(
      f"peak ratio {results[k]['peak'] / results[1]['peak']:.3f}, "
      f"activation (temp) ratio "
      f"{results[k]['temp'] / results[1]['temp']:.3f}; rel. diff loss "
      f"{diff_loss}, grads {diff_grads} (2-norm over all), {diff_arrays} (largest array's "
      "max |diff| / max |value|)"
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
              spatial=k,
              peak_bytes_per_device=int(results[k]["peak"]),
              peak_bytes_per_device_unsharded=int(results[1]["peak"]),
              temp_bytes_per_device=int(results[k]["temp"]),
              temp_bytes_per_device_unsharded=int(results[1]["temp"]),
              step_s=results[k]["step_s"],
              step_s_unsharded=results[1]["step_s"],
              max_rel_diff_loss=diff_loss,
              max_rel_diff_grads=diff_grads,
              max_array_rel_diff_grads=diff_arrays,
              cut_fraction=cut,
              exchanged_bytes_per_step=int(exchanged),
          )
      )
  )


if __name__ == "__main__":
  main()
