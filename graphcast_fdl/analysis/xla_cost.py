"""XLA's own cost and memory figures for the real training program.

Lowers the trainer's own jitted train step (loss + grad + clipped AdamW,
`train.train_step`) on abstract shapes (`jax.ShapeDtypeStruct`; no batch,
parameter or optimiser array is allocated) with the experiment's shardings
on a `jax.sharding.Mesh`, compiles it, and reads `memory_analysis()` and
`cost_analysis()` (both per device).

Two targets:
  * the local backend (`hardware=None`): when the config asks for more
    devices than are visible here, the program of one device is compiled
    instead (with data parallelism every device runs the same program on its
    share of the batch, plus the gradient all-reduce) and `devices` says so;
    graphs too large to build quickly here are skipped (MAX_EDGES_TO_BUILD);
  * a TPU generation (`hardware="tpu_v4"`, ...): XLA:TPU compiles for a
    described TPU slice (`jax.experimental.topologies`) on this machine, no
    TPU needed, only libtpu (`pip install -e ".[tpu]"`). The mesh has the
    config's device count where libtpu can describe such a slice. A program
    over the chip's memory fails to compile (RESOURCE_EXHAUSTED); that is
    reported as not fitting, with the compiler's required size.
Compiles take minutes at real sizes, so each program's figures are cached on
disk (`$GRAPHCAST_FDL_CACHE/xla`, default ~/.cache/graphcast_fdl/xla), keyed
by everything that defines the program (`program_key`): the configs,
rollout, batch, target, jax and libtpu versions and the source of the model,
graph and train step.

XLA's cost analysis counts a loop body once, so bytes and host copies are
read off the optimised HLO text instead, each while body times its trip
count (`hlo_loops`; `bytes_weighted`), and XLA's FLOPs are scaled by the
ratio of the module's matmul FLOPs so weighted to those counted once, with
XLA's counted-once figures kept beside them; the text is cached too
(`hlo_path`). Entries cached before that scaled XLA's figures by a FLOP
ratio and are not used for time. Memory figures are for the whole program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from graphcast_fdl import system
from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import hlo_loops
from graphcast_fdl.analysis import sizes as sizes_lib
from graphcast_fdl.data import transfer as transfer_lib
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.batch import Batch
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.model.normalization_stats import NormalizationStats
from graphcast_fdl.train import optimizer as optimizer_lib
from graphcast_fdl.train import sharding as sharding_lib
from graphcast_fdl.train import train_step as train_step_lib
from graphcast_fdl.train.experiment import Experiment

# Building (and compiling against) a graph with more edges than this costs
# minutes and GBs on a laptop-class CPU; above it local XLA figures are
# skipped. TPU targets always build (their figures are the point).
MAX_EDGES_TO_BUILD = 400_000
CACHE_VERSION = 1
CACHE_ENV_VAR = "GRAPHCAST_FDL_CACHE"
INSTALL_TPU = 'pip install -e ".[tpu]"'

# hardware key -> (libtpu topology prefix, chip config, topology rank).
# "megacore": one JAX device per chip (both TensorCores), as Cloud TPU v4 and
# v5p run; v5e and v6e have one TensorCore per chip.
TPU_TARGETS = {
    "tpu_v4": ("v4", "megacore", 3),
    "tpu_v5e": ("v5e", None, 2),
    "tpu_v5p": ("v5p", "megacore", 3),
    "tpu_v6e": ("v6e", None, 2),
}
# libtpu describes slices whole hosts at a time (4 chips per host).
_MIN_CHIPS = 4


@dataclasses.dataclass
class XlaCost:
  """Compiled-program figures for one step (None when unavailable).

  `fits` is the verdict on a TPU target: False when the compile ran out of
  device memory (`peak_bytes` is then the compiler's required temporaries
  plus the arguments' size, `reason` its message) or when the compiled
  peak exceeds the chip's memory (`capacity_bytes`); None on the local
  backend, where nothing is checked against a budget.
  """

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
  fits: bool | None = None
  capacity_bytes: float | None = None
  loops_weighted: bool = False
  host_bytes: float | None = None
  # FLOPs and bytes read off the optimised program with each loop body times
  # its trips, bytes copied host<->device per step (`hlo_loops`); XLA's own
  # cost analysis (loop bodies once) beside them.
  bytes_weighted: bool = False
  host_transfer_bytes: float | None = None
  xla_flops_once: float | None = None
  xla_bytes_once: float | None = None
  cached: bool = False

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class TpuCompilerMissing(RuntimeError):
  """libtpu is not installed: XLA:TPU cannot compile here."""


def dummy_stats(task: task_lib.TaskConfig):
  """Mean 0 / stddev 1 statistics with the right variables and levels."""
  levels = list(task.pressure_levels)
  names = sorted(
      set(task.input_variables) | set(task.target_variables) | set(task.forcing_variables)
  )

  def dataset(value):
    data = {}
    for name in names:
      if task_lib.has_levels(name):
        data[name] = xr.DataArray(
            np.full(len(levels), value, np.float32), dims=("level",), coords={"level": levels}
        )
      else:
        data[name] = xr.DataArray(np.float32(value))
    return xr.Dataset(data)

  return NormalizationStats(mean=dataset(0.0), stddev=dataset(1.0), diffs_stddev=dataset(1.0))


def _var_shape(
    name: str, batch: int, frames: int, levels: int, lat: int, lon: int
) -> tuple[int, ...]:
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


def batch_shapes(
    task: task_lib.TaskConfig,
    lat: int,
    lon: int,
    batch: int,
    rollout_steps: int,
    transfer_dtype: str = "float32",
):
  """A Batch of ShapeDtypeStructs (nothing allocated) as the loader sends
  it: targets float32, inputs and forcings in `transfer_dtype`
  (`data.transfer_dtype`)."""
  levels = task.num_levels
  sent = jnp.dtype(transfer_lib.DTYPES[transfer_dtype])

  def group(names, frames, dtype):
    return {
        n: jax.ShapeDtypeStruct(_var_shape(n, batch, frames, levels, lat, lon), dtype)
        for n in names
    }

  return Batch(
      inputs=group(task.input_variables, task_lib.input_frames(task), sent),
      targets=group(task.target_variables, rollout_steps, jnp.float32),
      forcings=group(task.forcing_variables, rollout_steps, sent),
  )


# --- TPU targets -------------------------------------------------------------


def libtpu_version() -> str | None:
  """libtpu's version, or None when it is not installed."""
  if importlib.util.find_spec("libtpu") is None:
    return None
  try:
    return importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def topology_name(hardware: str, chips: int) -> str:
  """libtpu's name of a slice of `chips` chips, e.g. ("tpu_v4", 32) ->
  "v4:4x4x2"; ValueError when libtpu cannot describe that many."""
  prefix, _, rank = TPU_TARGETS[hardware]
  if chips < _MIN_CHIPS or chips & (chips - 1):
    raise ValueError(f"{chips} chips: libtpu describes slices of 4, 8, 16, " "... chips")
  dims = [2, 2] + [1] * (rank - 2)
  while dims[0] * dims[1] * (dims[2] if rank == 3 else 1) < chips:
    i = dims.index(min(dims))
    dims[i] *= 2
  return f"{prefix}:{'x'.join(str(d) for d in dims)}"


@functools.cache
def tpu_devices(hardware: str, chips: int) -> tuple:
  """Devices of a described (not attached) TPU slice, one per chip."""
  if libtpu_version() is None:
    raise TpuCompilerMissing(f"--xla on {hardware} needs the TPU compiler: {INSTALL_TPU}")
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  _, chip_config, _ = TPU_TARGETS[hardware]
  kwargs = {"chip_config_name": chip_config} if chip_config else {}
  with system.stderr_captured():
    topology = topologies.get_topology_desc(
        topology_name=topology_name(hardware, chips), platform="tpu", **kwargs
    )
  return tuple(topology.devices)


_SIZE = r"([\d.]+)\s*([KMGT]?)i?B?"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_OOM_REQUIRED = re.compile(r"required for [^(]*\(" + _SIZE)
_OOM_AVAILABLE = re.compile(r"available [A-Za-z ]*\(" + _SIZE + r"\)")


def parse_resource_exhausted(message: str) -> tuple[float, float] | None:
  """(required, available) bytes from XLA:TPU's out-of-memory compile error,
  e.g. "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory
  required for HLO temporaries (42.65G / 64.81G) exceeds available HBM
  (30.75G)" -> (42.65 GiB, 30.75 GiB); None for any other message."""
  if "RESOURCE_EXHAUSTED" not in message:
    return None
  required = _OOM_REQUIRED.search(message)
  available = _OOM_AVAILABLE.search(message)
  if not required or not available:
    return None
  size = lambda m: float(m.group(1)) * _UNITS[m.group(2)]
  return size(required), size(available)


# --- the on-disk cache -------------------------------------------------------


def cache_dir() -> pathlib.Path:
  root = os.environ.get(CACHE_ENV_VAR) or (pathlib.Path.home() / ".cache" / "graphcast_fdl")
  return pathlib.Path(root).expanduser() / "xla"


@functools.cache
def _source_digest() -> str:
  """Digest of the code that defines the train step's program."""
  root = pathlib.Path(__file__).resolve().parents[1]
  digest = hashlib.sha256()
  for sub in ("model", "train", "graph"):
    for path in sorted((root / sub).glob("*.py")):
      digest.update(path.name.encode())
      digest.update(path.read_bytes())
  return digest.hexdigest()


def program_key(
    experiment: Experiment,
    *,
    rollout_steps: int,
    remat: RematConfig,
    precision: str,
    batch_per_device: int,
    target: str,
) -> str:
  """Hex digest of everything that defines one compiled program.

  Not the schedule: its learning rates are a few scalar ops of the step, and
  keying on it would recompile every phase whenever a step count changes.
  """
  import jax  # pylint: disable=g-import-not-at-top

  model = dataclasses.replace(experiment.model, remat=remat, precision=precision)
  inputs = {
      "version": CACHE_VERSION,
      "model": repr(model),
      "task": repr(experiment.task),
      "mesh": repr(experiment.mesh),
      "optimizer": repr(experiment.optimizer),
      "transfer_dtype": experiment.data.transfer_dtype,
      "rollout": rollout_steps,
      "batch_per_device": batch_per_device,
      "target": target,
      "jax": jax.__version__,
      "libtpu": libtpu_version(),
      "source": _source_digest(),
  }
  blob = json.dumps(inputs, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()


def _cache_load(key: str) -> XlaCost | None:
  try:
    with open(cache_dir() / f"{key}.json") as f:
      return XlaCost(**json.load(f), cached=True)
  except (OSError, ValueError, TypeError):
    return None


def hlo_path(key: str) -> pathlib.Path:
  """Where the optimised HLO text of a cached program is kept (gzip), so
  its loops can be re-weighed (`hlo_loops`) without recompiling."""
  return cache_dir() / f"{key}.hlo.gz"


def _save_hlo(key: str, text: str) -> None:
  directory = cache_dir()
  directory.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  with os.fdopen(fd, "wb") as f:
    f.write(gzip.compress(text.encode()))
  os.replace(tmp, hlo_path(key))


def _cache_save(key: str, cost: XlaCost) -> None:
  directory = cache_dir()
  directory.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump({k: v for k, v in cost.to_dict().items() if k != "cached"}, f)
  os.replace(tmp, directory / f"{key}.json")


# --- compiling ---------------------------------------------------------------


def _nbytes(tree, mesh_size: int, sharded) -> float:
  """Per-device bytes of abstract arrays (`sharded`: leading axis split)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  total = sum(float(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))
  return total / mesh_size if sharded else total


def analyze(
    experiment: Experiment,
    *,
    rollout_steps: int,
    remat: RematConfig,
    precision: str,
    batch_per_device: int = 1,
    max_edges: int = MAX_EDGES_TO_BUILD,
    hardware: str | None = None,
    progress=None,
    use_cache: bool = True,
) -> XlaCost:
  """Compiles the train step as the trainer jits it and reads XLA's analyses.

  Figures are per device: `peak_bytes` is arguments (params, optimiser
  state, the device's batch) + temporaries + outputs - donated aliases.

  Args:
    hardware: a `TPU_TARGETS` key to compile with XLA:TPU for that chip, or
      None for the local backend.
    progress: called with one line before and after a compile (minutes).
    use_cache: read and write the on-disk cache of figures.

  Raises:
    TpuCompilerMissing: a TPU target without libtpu installed.
  """
  model = dataclasses.replace(experiment.model, remat=remat, precision=precision)
  g = sizes_lib.graph_sizes(model)
  edges = g.grid2mesh_edges + g.mesh2grid_edges + g.mesh_edges
  if hardware is None and edges > max_edges:
    return XlaCost(False, f"graph of ~{edges:,} edges too large to build here")
  if hardware is not None and libtpu_version() is None:
    raise TpuCompilerMissing(f"--xla on {hardware} needs the TPU compiler: {INSTALL_TPU}")
  spatial = experiment.mesh.spatial
  if hardware is None and spatial > len(jax.devices()):
    return XlaCost(
        False, f"a split over {spatial} devices needs them; {len(jax.devices())} visible here"
    )
  n, target, described = _target(experiment, hardware, batch_per_device)
  devices = None
  key = program_key(
      experiment,
      rollout_steps=rollout_steps,
      remat=remat,
      precision=precision,
      batch_per_device=batch_per_device,
      target=target,
  )
  if use_cache and (hit := _cache_load(key)) is not None:
    if hardware and hit.fits is not False:
      _judge(hit, hardware)
    return hit
  start = time.perf_counter()
  if hardware is not None:
    devices = tpu_devices(hardware, n)
  mesh = sharding_lib.make_mesh(dataclasses.replace(experiment.mesh, num_devices=n), devices)
  predictor = _predictor(experiment, model, mesh)
  # With a space axis, `batch_per_device` examples per group of `spatial`.
  examples = n // spatial * batch_per_device
  batch = batch_shapes(
      experiment.task,
      g.grid_lat,
      g.grid_lon,
      examples,
      rollout_steps,
      experiment.data.transfer_dtype,
  )
  tx = optimizer_lib.make_optimizer(experiment.optimizer)
  abstract_state = jax.eval_shape(
      lambda p: train_step_lib.create_state(p, tx, jax.random.PRNGKey(0)),
      predictor_lib.param_shapes(model, experiment.task),
  )
  shardings = train_step_lib.state_shardings(abstract_state, mesh, experiment.mesh.shard_params)
  batch_shardings = None
  if hasattr(predictor, "place_batch"):  # As the trainer places it: latitude bands.
    batch, batch_shardings = predictor.place_batch(batch)
  train_step = train_step_lib.make_train_step(
      sharding_lib.data_parallel(predictor.loss, mesh),
      tx,
      optimizer_lib.schedule_learning_rate(experiment.schedule),
  )
  args = (abstract_state, batch)
  step = train_step_lib.jit_train_step(
      train_step,
      shardings,
      mesh,
      batch_shardings,
      host_targets=remat.host_targets,
      host_inputs=remat.host_inputs,
  )
  if hasattr(predictor, "graph_arrays") and devices is not None:
    # A described TPU holds no data: the graph parts become arguments, as
    # the trainer's device arrays are, instead of constants in the program.
    step, graph = _graph_as_argument(train_step, predictor, shardings, batch_shardings)
    args += (graph,)
  if progress:
    progress(
        f"compiling the train step, rollout {rollout_steps}, " f"{precision}, for {described} ..."
    )
  lowered = step.lower(*args)
  backend = "tpu" if hardware else jax.default_backend()
  try:
    with system.stderr_captured() if hardware else contextlib.nullcontext():
      compiled = lowered.compile()
  except Exception as e:  # pylint: disable=broad-except
    oom = parse_resource_exhausted(str(e))
    if oom is None:
      raise
    required, capacity = oom
    # Targets and inputs in host memory (`host_targets`, `host_inputs`,
    # never with a space split) take no device memory.
    if remat.host_targets or remat.host_inputs:
      on_device = _nbytes(
          batch.replace(
              targets={} if remat.host_targets else batch.targets,
              inputs={} if remat.host_inputs else batch.inputs,
          ),
          n,
          True,
      )
    else:
      on_device = _batch_bytes(batch, batch_shardings, n)
    args = _nbytes(abstract_state, n, experiment.mesh.shard_params) + on_device
    result = XlaCost(
        True,
        reason=str(e).strip().splitlines()[0][:300],
        backend=backend,
        temp_bytes=required,
        argument_bytes=args,
        peak_bytes=required + args,
        compile_seconds=time.perf_counter() - start,
        devices=described,
        fits=False,
        capacity_bytes=capacity,
    )
  else:
    text = compiled.as_text()
    result = _figures(compiled, text, rollout_steps, backend, described, start)
    if use_cache and text:
      _save_hlo(key, text)
    if hardware:
      _judge(result, hardware)
  if progress:
    verdict = "" if result.fits is None else (", fits" if result.fits else ", DOES NOT FIT")
    progress(
        f"  done in {result.compile_seconds:.0f} s: peak "
        f"{result.peak_bytes / 2**30:.2f} GiB per device{verdict}"
    )
  if use_cache:
    _cache_save(key, result)
  return result


def _target(experiment: Experiment, hardware: str | None, batch_per_device: int):
  """(devices compiled for, cache target name, their description)."""
  wanted = experiment.mesh.num_devices or 1
  if hardware is None:
    visible = len(jax.devices())
    # A spatial split's program needs its devices (checked by `analyze`).
    n = wanted if wanted <= visible else experiment.mesh.spatial
    described = (
        f"{n} device(s), the config's mesh"
        if n == wanted
        else f"1 device's program of {wanted} ({visible} visible here)"
    )
    return n, f"local:{jax.default_backend()}", described
  try:
    topology = topology_name(hardware, wanted)
    n = wanted
    described = f"{n} x {hardware} ({topology}), the config's mesh"
  except ValueError:
    n = max(_MIN_CHIPS, experiment.mesh.spatial)
    topology = topology_name(hardware, n)
    described = (
        f"{n} x {hardware} ({topology}) with {batch_per_device} "
        f"example(s) each: each device's program of {wanted}"
    )
  return n, f"{hardware}:{topology}", described


def cached(
    experiment: Experiment,
    *,
    rollout_steps: int,
    remat: RematConfig,
    precision: str,
    batch_per_device: int = 1,
    hardware: str | None = None,
) -> XlaCost | None:
  """The on-disk figures of a program compiled before, or None: no compile
  (what `fiddler:fit_memory` consults for every candidate policy).

  On a TPU target, a data-parallel mesh of more chips than libtpu's smallest
  slice also takes the figures of the same per-device program compiled for
  that slice (every device runs the same program on its examples, plus the
  gradient all-reduce): `devices` then says so.
  """
  if hardware is not None and libtpu_version() is None:
    return None  # the cache is keyed by libtpu's version
  candidates = [experiment]
  mesh = experiment.mesh
  if hardware is not None and (mesh.num_devices or 1) > _MIN_CHIPS:
    if mesh.spatial == 1 and not mesh.shard_params:
      candidates.append(
          dataclasses.replace(experiment, mesh=dataclasses.replace(mesh, num_devices=_MIN_CHIPS))
      )
  for candidate in candidates:
    _, target, _ = _target(candidate, hardware, batch_per_device)
    hit = _cache_load(
        program_key(
            candidate,
            rollout_steps=rollout_steps,
            remat=remat,
            precision=precision,
            batch_per_device=batch_per_device,
            target=target,
        )
    )
    if hit is not None:
      if candidate is not experiment:
        hit.devices += f": each device's program of {mesh.num_devices}"
      if hardware and hit.fits is not False:
        _judge(hit, hardware)
      return hit
  return None


def _graph_as_argument(train_step, predictor, state_shardings, batch_shardings):
  """(jitted step(state, batch, graph), abstract graph): `train_step`, jitted
  as `train_step.jit_train_step` does, reading the spatial predictor's graph
  parts from a third argument split over the space axis."""
  from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top

  space = NamedSharding(predictor.mesh, PartitionSpec(predictor.space_axis))
  graph = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), predictor.graph_arrays()
  )

  def step(state, batch, graph):
    with predictor.graph_arrays_as(*graph):
      return train_step(state, batch)

  if batch_shardings is None:
    batch_shardings = sharding_lib.batch_sharding(predictor.mesh)
  jitted = jax.jit(
      step,
      in_shardings=(state_shardings, batch_shardings, space),
      out_shardings=(state_shardings, sharding_lib.replicated(predictor.mesh)),
      donate_argnums=(0,),
  )
  return jitted, graph


def _batch_bytes(batch, shardings, n: int) -> float:
  """Per-device bytes of the batch: its shards' shapes where `shardings`
  says, else split over all `n` devices (data parallelism)."""
  if shardings is None:
    return _nbytes(batch, n, True)
  leaves = zip(jax.tree.leaves(batch), jax.tree.leaves(shardings))
  return sum(float(np.prod(s.shard_shape(x.shape))) * np.dtype(x.dtype).itemsize for x, s in leaves)


def _predictor(experiment: Experiment, model, mesh):
  """The trainer's predictor: split over the space axis if the mesh has one."""
  stats = dummy_stats(experiment.task)
  if experiment.mesh.spatial == 1:
    return predictor_lib.Predictor(model, experiment.task, stats)
  from graphcast_fdl.model import spatial as spatial_lib  # pylint: disable=g-import-not-at-top

  return spatial_lib.SpatialPredictor(
      model,
      experiment.task,
      stats,
      mesh=mesh,
      space_axis=experiment.mesh.space_axis,
      data_axis=experiment.mesh.data_axis,
  )


def _judge(result: XlaCost, hardware: str) -> None:
  """Sets `fits` of a successful TPU compile from its peak. XLA:TPU may
  compile a program over the chip's memory (seen at 0.25 deg, rollout 2:
  38.4 GiB for a 32 GiB v4), so success alone is no verdict."""
  from graphcast_fdl.analysis import hardware as hardware_lib  # pylint: disable=g-import-not-at-top

  result.capacity_bytes = hardware_lib.get(hardware).memory_bytes
  result.fits = result.peak_bytes <= result.capacity_bytes
  result.reason = (
      ""
      if result.fits
      else (
          f"compiled peak {result.peak_bytes / 2**30:.2f} GiB exceeds the "
          f"chip's {result.capacity_bytes / 2**30:.0f} GiB"
      )
  )


def _figures(
    compiled, text: str, rollout_steps: int, backend: str, devices: str, start: float
) -> XlaCost:
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  # XLA's cost analysis counts each loop body once: bytes and host copies are
  # read off the optimised program instead, each loop body times its trips
  # (`hlo_loops`), and XLA's FLOPs are scaled as its matmuls weigh (XLA's
  # counted-once figures are kept beside them); XLA's times the rollout
  # length when the text cannot be read.
  xla_flops, xla_bytes = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
  flops, nbytes = xla_flops * rollout_steps, xla_bytes * rollout_steps
  weighted, host_transfer = False, None
  try:
    loops = hlo_loops.loop_totals(text, unknown_trips=rollout_steps)
    if loops.flops_once > 0 and loops.bytes_once > 0:
      # XLA's FLOPs (elementwise ones too) times the matmuls' loop weighting.
      flops = xla_flops * loops.flops_weighted / loops.flops_once
      nbytes = loops.bytes_weighted
      weighted, host_transfer = True, loops.host_bytes_weighted
  except Exception:  # pylint: disable=broad-except
    pass
  temp = float(memory.temp_size_in_bytes)
  args = float(memory.argument_size_in_bytes)
  out = float(memory.output_size_in_bytes)
  alias = float(getattr(memory, "alias_size_in_bytes", 0))
  host = sum(
      float(getattr(memory, f"host_{kind}_size_in_bytes", 0) or 0)
      for kind in ("argument", "temp", "output")
  )
  return XlaCost(
      True,
      backend=backend,
      flops=flops,
      bytes_accessed=nbytes,
      xla_flops_once=xla_flops,
      xla_bytes_once=xla_bytes,
      temp_bytes=temp,
      argument_bytes=args,
      output_bytes=out,
      peak_bytes=temp + args + out - alias,
      host_bytes=host,
      compile_seconds=time.perf_counter() - start,
      devices=devices,
      loops_weighted=weighted,
      bytes_weighted=weighted,
      host_transfer_bytes=host_transfer,
  )
