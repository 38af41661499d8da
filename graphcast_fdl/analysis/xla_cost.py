"""XLA's own cost and memory figures for the real training program.

Lowers the trainer's own jitted train step (loss + grad + clipped AdamW,
`train.train_step`) on abstract shapes (`jax.ShapeDtypeStruct`; no batch,
parameter or optimiser array is allocated) with the experiment's shardings
on a `jax.sharding.Mesh`, compiles it for the local backend, and reads
`memory_analysis()` and `cost_analysis()` (both per device). When the
config asks for more devices than are visible here, the program of one
device is compiled instead (with data parallelism every device runs the same
program on its share of the batch, plus the gradient all-reduce) and
`devices` says so. The graph itself is a constant of the program and must be
built, so configs whose graph is too large to build here are reported as
unavailable (the estimator then shows analytic numbers only and says so).

XLA counts a `lax.scan` body once: FLOPs and bytes of a rollout are scaled by
the rollout length here (not exact for block loops and nested segments);
memory figures are for the whole program.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import sizes as sizes_lib
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.train import optimizer as optimizer_lib
from graphcast_fdl.train import sharding as sharding_lib
from graphcast_fdl.train import train_step as train_step_lib
from graphcast_fdl.train.experiment import Experiment

# Building (and compiling against) a graph with more edges than this costs
# minutes and GBs on a laptop-class CPU; above it XLA figures are skipped.
MAX_EDGES_TO_BUILD = 400_000


@dataclasses.dataclass
class XlaCost:
  """Compiled-program figures for one step (None when unavailable)."""

  available: bool
  reason: str = ""
  backend: str = ""
  flops: float | None = None
  bytes_accessed: float | None = None
  temp_bytes: float | None = None
  argument_bytes: float | None = None
  output_bytes: float | None = None
  peak_bytes: float | None = None
  compile_seconds: float | None = None
  devices: str = ""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def dummy_stats(task: task_lib.TaskConfig):
  """Mean 0 / stddev 1 statistics with the right variables and levels."""
  levels = list(task.pressure_levels)
  names = sorted(set(task.input_variables) | set(task.target_variables)
                 | set(task.forcing_variables))

  def dataset(value):
    data = {}
    for name in names:
      if task_lib.has_levels(name):
        data[name] = xr.DataArray(np.full(len(levels), value, np.float32),
                                  dims=("level",), coords={"level": levels})
      else:
        data[name] = xr.DataArray(np.float32(value))
    return xr.Dataset(data)

  return NormalizationStats(mean=dataset(0.0), stddev=dataset(1.0),
                            diffs_stddev=dataset(1.0))


def _var_shape(name: str, batch: int, frames: int, levels: int, lat: int,
               lon: int) -> tuple[int, ...]:
  """Batch-layout shape of one variable (see `model/batch.py`)."""
  if name in task_lib.STATIC:
    return (batch, lat, lon)
  if name.startswith("year_progress"):
    return (batch, frames)
  if name.startswith("day_progress"):
    return (batch, frames, lon)
  if task_lib.has_levels(name):
    return (batch, frames, levels, lat, lon)
  return (batch, frames, lat, lon)


def batch_shapes(task: task_lib.TaskConfig, lat: int, lon: int, batch: int,
                 rollout_steps: int):
  """A Batch of float32 ShapeDtypeStructs (nothing allocated)."""
  levels = task.num_levels

  def group(names, frames):
    return {n: jax.ShapeDtypeStruct(
        _var_shape(n, batch, frames, levels, lat, lon), jnp.float32)
            for n in names}

  return Batch(inputs=group(task.input_variables, task_lib.input_frames(task)),
               targets=group(task.target_variables, rollout_steps),
               forcings=group(task.forcing_variables, rollout_steps))


def analyze(experiment: Experiment, *, rollout_steps: int, remat: RematConfig,
            precision: str, batch_per_device: int = 1,
            max_edges: int = MAX_EDGES_TO_BUILD) -> XlaCost:
  """Compiles the train step as the trainer jits it and reads XLA's analyses.

  Figures are per device: `peak_bytes` is arguments (params, optimiser
  state, the device's batch) + temporaries + outputs - donated aliases.
  """
  model = dataclasses.replace(experiment.model, remat=remat, precision=precision)
  g = sizes_lib.graph_sizes(model)
  edges = g.grid2mesh_edges + g.mesh2grid_edges + g.mesh_edges
  if edges > max_edges:
    return XlaCost(False, f"graph of ~{edges:,} edges too large to build here")
  start = time.perf_counter()
  wanted = experiment.mesh.num_devices or 1
  visible = len(jax.devices())
  n = wanted if wanted <= visible else 1
  mesh = sharding_lib.make_mesh(
      dataclasses.replace(experiment.mesh, num_devices=n))
  devices = (f"{n} device(s), the config's mesh" if n == wanted else
             f"1 device's program of {wanted} ({visible} visible here)")
  predictor = predictor_lib.Predictor(model, experiment.task,
                                      dummy_stats(experiment.task))
  batch = batch_shapes(experiment.task, g.grid_lat, g.grid_lon,
                       n * batch_per_device, rollout_steps)
  tx = optimizer_lib.make_optimizer(experiment.optimizer)
  abstract_state = jax.eval_shape(
      lambda p: train_step_lib.create_state(p, tx, jax.random.PRNGKey(0)),
      predictor_lib.param_shapes(model, experiment.task))
  shardings = train_step_lib.state_shardings(abstract_state, mesh,
                                             experiment.mesh.shard_params)
  step = train_step_lib.jit_train_step(
      train_step_lib.make_train_step(
          sharding_lib.data_parallel(predictor.loss, mesh), tx,
          optimizer_lib.schedule_learning_rate(experiment.schedule)),
      shardings, mesh)
  compiled = step.lower(abstract_state, batch).compile()
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  scale = rollout_steps  # scan bodies are counted once
  temp = float(memory.temp_size_in_bytes)
  args = float(memory.argument_size_in_bytes)
  out = float(memory.output_size_in_bytes)
  alias = float(getattr(memory, "alias_size_in_bytes", 0))
  return XlaCost(
      True, backend=jax.default_backend(),
      flops=float(cost.get("flops", 0.0)) * scale,
      bytes_accessed=float(cost.get("bytes accessed", 0.0)) * scale,
      temp_bytes=temp, argument_bytes=args, output_bytes=out,
      peak_bytes=temp + args + out - alias,
      compile_seconds=time.perf_counter() - start, devices=devices)
