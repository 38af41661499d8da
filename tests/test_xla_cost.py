"""XLA:TPU figures of the train step: the cache, its keys, compiler errors.

The fast tests need no TPU compiler; the slow one compiles a tiny config for
TPU v4 when libtpu is installed (`pip install -e ".[tpu]"`).
"""

import dataclasses
import json
import os
import subprocess
import sys

import fiddle as fdl
import pytest

from graphcast_fdl import experiments
from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.model.config import RematConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GiB = 2**30
_OOM = (
    "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory "
    "required for HLO temporaries (42.65G / 64.81G) exceeds available "
    "HBM (30.75G)"
)


def _demo():
  return fdl.build(experiments.demo())


def _only(experiment, phase):
  """`experiment` with `phase` its whole schedule."""
  return dataclasses.replace(
      experiment, schedule=dataclasses.replace(experiment.schedule, phases=(phase,))
  )


def _tpu_cache_in(tmp_path, monkeypatch):
  """Compiled figures cached under `tmp_path`, and a TPU compiler said to be
  installed (these tests read or write the cache; none compiles)."""
  monkeypatch.setenv(xla_cost.CACHE_ENV_VAR, str(tmp_path))
  monkeypatch.setattr(xla_cost, "libtpu_version", lambda: "0.0.42.1")


def test_parse_resource_exhausted():
  required, available = xla_cost.parse_resource_exhausted(
      "XlaRuntimeError: " + _OOM + "\nmore detail"
  )
  assert required == pytest.approx(42.65 * GiB)
  assert available == pytest.approx(30.75 * GiB)
  assert xla_cost.parse_resource_exhausted(
      "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory "
      "required for HLO temporaries (512.5M) exceeds available HBM (16M)"
  ) == (512.5 * 2**20, 16 * 2**20)
  assert xla_cost.parse_resource_exhausted("INVALID_ARGUMENT: bad") is None
  assert xla_cost.parse_resource_exhausted("RESOURCE_EXHAUSTED: other") is None


def test_topology_names():
  assert xla_cost.topology_name("tpu_v4", 4) == "v4:2x2x1"
  assert xla_cost.topology_name("tpu_v4", 32) == "v4:4x4x2"
  assert xla_cost.topology_name("tpu_v5e", 16) == "v5e:4x4"
  with pytest.raises(ValueError, match="6 chips"):
    xla_cost.topology_name("tpu_v4", 6)


def test_program_key_changes_with_what_defines_the_program():
  experiment = _demo()
  remat = experiment.model.remat
  key = lambda e=experiment, **kw: xla_cost.program_key(
      e,
      **{
          "rollout_steps": 1,
          "remat": remat,
          "precision": "float32",
          "batch_per_device": 1,
          "target": "tpu_v4:v4:2x2x1",
          **kw,
      },
  )
  base = key()
  assert base == key()
  assert base != key(rollout_steps=2)
  assert base != key(remat=RematConfig(rollout_step=True))
  assert base != key(precision="bfloat16")
  assert base != key(batch_per_device=2)
  assert base != key(target="tpu_v5p:v5p:2x2x1")
  wider = dataclasses.replace(
      experiment, model=dataclasses.replace(experiment.model, latent_size=64)
  )
  assert base != key(wider)
  bf16 = dataclasses.replace(
      experiment, data=dataclasses.replace(experiment.data, transfer_dtype="bfloat16")
  )
  assert base != key(bf16)


def test_batch_travels_in_the_transfer_dtype():
  """The compiled batch is the loader's: with `data.transfer_dtype`
  bfloat16, inputs and forcings arrive as bfloat16, targets float32."""
  task = _demo().task
  for dtype in ("float32", "bfloat16"):
    batch = xla_cost.batch_shapes(task, 4, 8, 1, 2, dtype)
    for part, want in (("inputs", dtype), ("forcings", dtype), ("targets", "float32")):
      dtypes = {str(x.dtype) for x in getattr(batch, part).values()}
      assert dtypes == {want}, part


def test_cached_figures_are_read_back_without_compiling(tmp_path, monkeypatch):
  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  kwargs = dict(
      rollout_steps=3, remat=experiment.model.remat, precision="float32", batch_per_device=2
  )
  key = xla_cost.program_key(experiment, target="tpu_v4:v4:2x2x1", **kwargs)
  stored = xla_cost.XlaCost(
      True,
      backend="tpu",
      peak_bytes=40 * GiB,
      temp_bytes=38 * GiB,
      compile_seconds=200.0,
      fits=False,
      reason=_OOM,
  )
  xla_cost._cache_save(key, stored)  # pylint: disable=protected-access
  got = xla_cost.analyze(experiment, hardware="tpu_v4", **kwargs)
  assert got.cached and got.peak_bytes == 40 * GiB and got.fits is False
  assert got.reason == _OOM
  # The same program for another chip is not that entry.
  assert (
      xla_cost._cache_load(  # pylint: disable=protected-access
          xla_cost.program_key(experiment, target="tpu_v5p:v5p:2x2x1", **kwargs)
      )
      is None
  )


def test_estimate_lets_the_compiler_decide_fits(tmp_path, monkeypatch):
  """A cached XLA:TPU 'does not fit' overrides the analytic verdict."""
  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  phase = experiment.schedule.phases[0]
  key = xla_cost.program_key(
      experiment,
      rollout_steps=phase.rollout_steps,
      remat=phase.remat or experiment.model.remat,
      precision=phase.precision or experiment.model.precision,
      batch_per_device=2,
      target="tpu_v4:v4:2x2x1",
  )
  xla_cost._cache_save(
      key,
      xla_cost.XlaCost(  # pylint: disable=protected-access
          True,
          backend="tpu",
          peak_bytes=40 * GiB,
          temp_bytes=38 * GiB,
          argument_bytes=2 * GiB,
          compile_seconds=1.0,
          fits=False,
          reason=_OOM,
      ),
  )
  experiment = _only(experiment, phase)
  est = estimator.estimate(experiment, "tpu_v4", use_xla=True)
  (got,) = est.phases
  assert got.xla["peak_bytes"] == 40 * GiB and not got.fits and not est.fits
  assert got.headroom_bytes == pytest.approx(-8 * GiB)
  table = estimator.format_table(est)
  assert "DOES NOT FIT: RESOURCE_EXHAUSTED" in table and "(cached)" in table


def test_fit_memory_takes_the_compilers_peak_from_the_cache(tmp_path, monkeypatch):
  """`phase_policies` (behind `fiddler:fit_memory`) judges a policy by the
  cached XLA:TPU figures of its program, the analytic model otherwise."""
  from graphcast_fdl.analysis import fit  # pylint: disable=g-import-not-at-top

  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  phase = experiment.schedule.phases[0]
  experiment = _only(experiment, phase)
  (analytic,) = fit.phase_policies(experiment, "tpu_v4")
  assert analytic.fits and analytic.decided_by == "analytic"

  def store(remat, peak, fits):
    key = xla_cost.program_key(
        experiment,
        rollout_steps=phase.rollout_steps,
        remat=remat,
        precision=experiment.model.precision,
        batch_per_device=2,
        target="tpu_v4:v4:2x2x1",
    )
    cost = xla_cost.XlaCost(
        True, backend="tpu", peak_bytes=peak, temp_bytes=peak, compile_seconds=1.0, fits=fits
    )
    xla_cost._cache_save(key, cost)  # pylint: disable=protected-access

  # The compiler says the analytic choice needs 40 GiB: the next one wins.
  store(analytic.remat, 40 * GiB, False)
  (second,) = fit.phase_policies(experiment, "tpu_v4")
  assert second.remat != analytic.remat and second.decided_by == "analytic"
  assert second.step_seconds >= analytic.step_seconds
  store(second.remat, 3 * GiB, True)
  (third,) = fit.phase_policies(experiment, "tpu_v4")
  assert third.remat == second.remat and third.decided_by == "xla:tpu"
  assert third.peak_bytes == 3 * GiB and third.fits
  # A budget below the compiler's peak moves on again.
  (fourth,) = fit.phase_policies(experiment, "tpu_v4", memory_bytes=2 * GiB)
  assert fourth.remat not in (analytic.remat, second.remat)


def test_fit_search_takes_the_compilers_peak_from_the_cache(tmp_path, monkeypatch):
  """`estimate --fit` (`fit.search`) judges each setting by the cached
  XLA:TPU figures of its phases' programs where there are any."""
  from graphcast_fdl.analysis import fit  # pylint: disable=g-import-not-at-top

  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  phase = experiment.schedule.phases[0]
  experiment = _only(experiment, phase)
  devices = experiment.mesh.num_devices
  search = lambda: fit.search(experiment, "tpu_v4", None, devices, precisions=("bfloat16",))
  first = search()[0]
  assert first.decided_by == "analytic"
  candidate = fit.with_settings(
      experiment,
      first.remat,
      first.edge_block_size,
      first.precision,
      devices,
      first.per_device_batch,
  )
  _, target, _ = xla_cost._target(candidate, "tpu_v4", first.per_device_batch)  # pylint: disable=protected-access
  key = xla_cost.program_key(
      candidate,
      rollout_steps=phase.rollout_steps,
      remat=first.remat,
      precision=first.precision,
      batch_per_device=first.per_device_batch,
      target=target,
  )
  over = xla_cost.XlaCost(True, backend="tpu", peak_bytes=40 * GiB, temp_bytes=40 * GiB, fits=False)
  xla_cost._cache_save(key, over)  # pylint: disable=protected-access
  results = search()
  assert all((r.remat, r.edge_block_size) != (first.remat, first.edge_block_size) for r in results)
  fitting = xla_cost.XlaCost(True, backend="tpu", peak_bytes=1 * GiB, temp_bytes=GiB, fits=True)
  xla_cost._cache_save(key, fitting)  # pylint: disable=protected-access
  (again,) = [
      r
      for r in fit.search(experiment, "tpu_v4", None, devices, precisions=("bfloat16",), top=500)
      if (r.remat, r.edge_block_size) == (first.remat, first.edge_block_size)
  ]
  assert (again.decided_by, again.peak_bytes) == ("xla:tpu", 1 * GiB)


def test_rollout_phases_are_priced_from_the_compilers_figures(tmp_path, monkeypatch):
  """XLA:TPU-priced time: FLOPs and bytes of the compiled program (scan
  bodies times trip counts) on the roofline; the host link's time where it
  is longer; a rollout whose program did not fit (no cost analysis) takes a
  compiled rollout's per-step figures."""
  from graphcast_fdl.analysis import calibration  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import hardware  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train import schedule as schedule_lib  # pylint: disable=g-import-not-at-top

  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  phases = tuple(schedule_lib.Phase(f"r{r}", num_steps=10, rollout_steps=r) for r in (1, 2, 3, 4))
  experiment = dataclasses.replace(
      experiment, schedule=dataclasses.replace(experiment.schedule, phases=phases)
  )
  tpu = hardware.get("tpu_v4")
  pcie = tpu.host_link_bandwidth
  assert pcie == pytest.approx(15.75e9, rel=1e-3)  # x16 PCIe Gen3
  # (FLOPs, bytes, host<->device copies) per step; rollout 4: 40 s of host
  # copies, far over its device time.
  figures = {
      1: (2.75e12, 1.2e11, 0.0),
      2: (2 * 4e12, 2 * 6e11, 0.0),
      3: (None, None, None),
      4: (4 * 4e12, 4 * 6e11, 40 * pcie),
  }
  remat4 = dataclasses.replace(
      experiment.model.remat, rollout_step=True, rollout_saves="prediction", offload_rollout=True
  )
  for r, (flops, nbytes, host) in figures.items():
    key = xla_cost.program_key(
        experiment,
        rollout_steps=r,
        remat=remat4 if r == 4 else experiment.model.remat,
        precision=experiment.model.precision,
        batch_per_device=2,
        target="tpu_v4:v4:2x2x1",
    )
    cost = xla_cost.XlaCost(
        True,
        backend="tpu",
        flops=flops,
        bytes_accessed=nbytes,
        host_transfer_bytes=host,
        peak_bytes=GiB,
        temp_bytes=GiB,
        compile_seconds=1.0,
        fits=flops is not None,
        loops_weighted=True,
        bytes_weighted=True,
    )
    xla_cost._cache_save(key, cost)  # pylint: disable=protected-access
  phases = tuple(
      dataclasses.replace(p, remat=remat4) if p.rollout_steps == 4 else p for p in phases
  )
  experiment = dataclasses.replace(
      experiment, schedule=dataclasses.replace(experiment.schedule, phases=phases)
  )
  est = estimator.estimate(experiment, "tpu_v4", use_xla=True, xla_cached_only=True)
  one, two, three, four = est.phases
  eff = calibration.xla_efficiency("tpu")
  allreduce = one.xla_step_seconds - 0.1 / eff  # 1-step: bytes-bound, 0.1 s
  assert allreduce == pytest.approx(
      estimator._allreduce_seconds(one.gradient_bytes, est.num_devices, tpu)  # pylint: disable=protected-access
  )
  assert one.xla_terms["flops"] == pytest.approx(2.75e12 / tpu.peak("float32"))
  assert one.xla_terms["bytes"] == pytest.approx(0.1) and one.xla_terms["bound"] == "bytes"
  # The demo batch crosses the host link each step: far below the device time.
  assert one.xla_terms["host"] == pytest.approx(one.data_bytes / pcie)
  assert two.xla_step_seconds == pytest.approx(1.0 / eff + allreduce)  # 1.2e12 B at 1.2e12 B/s
  assert three.xla_step_seconds == pytest.approx(1.5 / eff + allreduce)
  assert not three.fits and three.xla["flops"] is None
  # Offloaded frames: the host link binds.
  assert four.xla_terms["bound"] == "host"
  assert four.xla_step_seconds == pytest.approx(40 + four.data_bytes / pcie + allreduce)
  # Forward passes per rollout step: the compiler's FLOPs over the analytic forward.
  assert estimator.xla_forward_passes(two) == pytest.approx(
      4e12 / two.forward_flops_per_rollout_step
  )
  assert estimator.xla_forward_passes(three) is None
  table = estimator.format_table(est)
  assert " host " in table and "fwd/step" in table
  # `estimate --xla --format=json` prints `to_json`: per phase the compiler's figures.
  doc = json.loads(est.to_json())["phases"]
  assert doc[0]["xla"]["backend"] == "tpu" and doc[0]["xla"]["peak_bytes"] == GiB
  assert (doc[0]["xla"]["flops"], doc[0]["xla"]["bytes_accessed"]) == (2.75e12, 1.2e11)
  assert doc[0]["xla"]["compile_seconds"] == 1.0 and doc[0]["xla"]["cached"]
  assert doc[3]["xla_terms"]["bound"] == "host" and doc[2]["xla"]["flops"] is None
  assert doc[1]["xla_step_seconds"] == pytest.approx(two.xla_step_seconds)
  # Figures whose bytes were rescaled by the FLOP ratio (before `hlo_loops`
  # weighed bytes by their own loops) price nothing.
  for r in (1, 2):
    key = xla_cost.program_key(
        experiment,
        rollout_steps=r,
        remat=experiment.model.remat,
        precision=experiment.model.precision,
        batch_per_device=2,
        target="tpu_v4:v4:2x2x1",
    )
    old = xla_cost._cache_load(key)  # pylint: disable=protected-access
    old.bytes_weighted = False
    xla_cost._cache_save(key, old)  # pylint: disable=protected-access
  est = estimator.estimate(experiment, "tpu_v4", use_xla=True, xla_cached_only=True)
  assert [p.xla_step_seconds is None for p in est.phases] == [True, True, True, False]
  # Without cached figures nothing is compiled and nothing is XLA-priced.
  monkeypatch.setenv(xla_cost.CACHE_ENV_VAR, str(tmp_path / "empty"))
  est = estimator.estimate(experiment, "tpu_v4", use_xla=True, xla_cached_only=True)
  assert all(p.xla_step_seconds is None and not p.xla["available"] for p in est.phases)


def test_a_data_parallel_mesh_takes_the_4_chip_program(tmp_path, monkeypatch):
  """Without figures for its own 32-chip mesh, a data-parallel config takes
  those of the same per-device program compiled for 4 chips; a mesh with
  sharded parameters (another per-device program) does not."""
  _tpu_cache_in(tmp_path, monkeypatch)
  cfg = experiments.graphcast()
  experiments.devices(cfg, n=4)
  four = fdl.build(cfg)
  kwargs = dict(rollout_steps=1, remat=four.model.remat, precision="bfloat16", batch_per_device=1)
  key = xla_cost.program_key(four, target="tpu_v4:v4:2x2x1", **kwargs)
  stored = xla_cost.XlaCost(True, backend="tpu", peak_bytes=GiB, devices="4 x tpu_v4 (v4:2x2x1)")
  xla_cost._cache_save(key, stored)  # pylint: disable=protected-access
  experiments.devices(cfg, n=32)
  got = xla_cost.cached(fdl.build(cfg), hardware="tpu_v4", **kwargs)
  assert got.peak_bytes == GiB and got.fits
  assert got.devices == "4 x tpu_v4 (v4:2x2x1): each device's program of 32"
  sharded = fdl.build(cfg)
  sharded = dataclasses.replace(sharded, mesh=dataclasses.replace(sharded.mesh, shard_params=True))
  assert xla_cost.cached(sharded, hardware="tpu_v4", **kwargs) is None


def test_cli_xla_on_tpu_without_libtpu_is_one_line():
  if xla_cost.libtpu_version() is not None:
    pytest.skip("libtpu is installed here")
  out = subprocess.run(
      [
          sys.executable,
          "-m",
          "graphcast_fdl.main",
          "estimate",
          "--config=config:demo",
          "--hardware=tpu_v4",
          "--xla",
      ],
      capture_output=True,
      text=True,
      cwd=REPO,
      timeout=120,
      check=False,
  )
  assert out.returncode == 2
  assert out.stderr.strip().count("\n") == 0
  assert 'pip install -e ".[tpu]"' in out.stderr


@pytest.mark.slow
def test_compiles_a_tiny_config_for_tpu_v4(tmp_path, monkeypatch):
  """XLA:TPU's own figures for the demo's 2-step train step on TPU v4."""
  if xla_cost.libtpu_version() is None:
    pytest.skip('libtpu not installed: pip install -e ".[tpu]"')
  monkeypatch.setenv(xla_cost.CACHE_ENV_VAR, str(tmp_path))
  experiment = _demo()
  lines = []
  got = xla_cost.analyze(
      experiment,
      rollout_steps=2,
      remat=RematConfig(rollout_step=True),
      precision="float32",
      batch_per_device=2,
      hardware="tpu_v4",
      progress=lines.append,
  )
  assert got.backend == "tpu" and got.fits and not got.cached
  assert 1e6 < got.temp_bytes < 2 * GiB and got.flops > 1e9
  assert got.peak_bytes >= got.temp_bytes + got.argument_bytes - 1
  assert "tpu_v4 (v4:2x2x1)" in got.devices and len(lines) == 2
  again = xla_cost.analyze(
      experiment,
      rollout_steps=2,
      remat=RematConfig(rollout_step=True),
      precision="float32",
      batch_per_device=2,
      hardware="tpu_v4",
  )
  assert again.cached and again.peak_bytes == got.peak_bytes


_SHARDED_SCANS = """
import dataclasses, jax
jax.config.update("jax_num_cpu_devices", 2)
import fiddle as fdl
from graphcast_fdl import experiments
from graphcast_fdl.analysis import sizes, xla_cost
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.train import sharding
e = fdl.build(experiments.demo())
model = dataclasses.replace(
    e.model, edge_block_size=256, precision="bfloat16",
    remat=RematConfig(rollout_step=True, processor_every_k=2,
                      encoder_decoder=True, grid_block_size=300,
                      rollout_segment=2))
g = sizes.graph_sizes(model)
mesh = sharding.make_mesh(dataclasses.replace(e.mesh, num_devices=2))
predictor = predictor_lib.Predictor(model, e.task, xla_cost.dummy_stats(e.task))
loss = sharding.data_parallel(predictor.loss, mesh)
grads = jax.eval_shape(
    jax.grad(lambda p, b: loss(p, b)[0]),
    predictor_lib.param_shapes(model, e.task),
    xla_cost.batch_shapes(e.task, g.grid_lat, g.grid_lon, 2, 3))
print("traced", len(jax.tree.leaves(grads)))
"""


def test_every_scan_compiles_under_data_parallelism():
  """Edge blocks, grid blocks, processor groups and rollout segments inside
  `shard_map` (2 CPU devices): each loop's initial carry must be marked as
  varying over the data axis, or tracing the loss's gradient fails."""
  out = subprocess.run(
      [sys.executable, "-c", _SHARDED_SCANS],
      capture_output=True,
      text=True,
      cwd=REPO,
      timeout=300,
      check=False,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert "traced" in out.stdout


def test_a_compiled_peak_over_the_chip_does_not_fit(tmp_path, monkeypatch):
  """XLA:TPU compiled the 0.25 deg rollout-2 step at 38.35 GiB for a 32 GiB
  TPU v4 without an error: the peak decides, also for cached figures."""
  _tpu_cache_in(tmp_path, monkeypatch)
  experiment = _demo()
  kwargs = dict(
      rollout_steps=2, remat=experiment.model.remat, precision="float32", batch_per_device=2
  )
  key = xla_cost.program_key(experiment, target="tpu_v4:v4:2x2x1", **kwargs)
  xla_cost._cache_save(
      key,
      xla_cost.XlaCost(  # pylint: disable=protected-access
          True, backend="tpu", peak_bytes=38.35 * GiB, compile_seconds=1.0, fits=True
      ),
  )
  got = xla_cost.analyze(experiment, hardware="tpu_v4", **kwargs)
  assert got.fits is False and got.capacity_bytes == 32 * GiB
  assert got.reason == "compiled peak 38.35 GiB exceeds the chip's 32 GiB"
