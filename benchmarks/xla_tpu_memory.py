"""XLA:TPU's per-chip memory of our train step at real sizes (no TPU needed).

Compiles the trainer's own train step for a described TPU slice
(`analysis.xla_cost`, needs `pip install -e ".[tpu]"`) and prints XLA:TPU's
figures beside the analytic model's, one row per (config, rollout, remat):

  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=1,2,12
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=12 \\
      --remat='rollout_step=True,processor_every_k=3,encoder_decoder=True,rollout_segment=4'
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=1,12 --spatial=4
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=2 \\
      --model=grid_parts_per_edge=False
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=12 \\
      --remat="rollout_step=True,processor_every_k=3,encoder_decoder=True"

(`config:graphcast` keeps rollout predictions in host memory and its targets
there too, `RematConfig.rollout_saves/offload_rollout/host_targets`; the last
line compiles the published policy without them.)

With --spatial=K each example is split over K chips (`model.spatial`), one
example per group of K unless --per_group_batch says otherwise.

  python benchmarks/xla_tpu_memory.py --points            # calibration table
  python benchmarks/xla_tpu_memory.py --points --cached   # no compiles

`--points` prints the analytic peak against XLA:TPU's at the points the
analytic model is calibrated on (`calibration.XLA_TPU_PEAKS`): the compiler's
figure from the cache (compiling those missing unless `--cached`), else the
recorded one. Figures are cached on disk per program (seconds on a rerun); a
first compile of the 0.25 deg model takes 3-30 minutes and ~9 GiB on a 2-core
CPU (run it under the machine's compile lock if it has one).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import fiddle as fdl

from graphcast_fdl import experiments
from graphcast_fdl.analysis import calibration
from graphcast_fdl.analysis import cost_model
from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import spatial_cost
from graphcast_fdl.experiments import fiddlers
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.model.config import RematConfig

GiB = 2**30


def _fields(text: str | None) -> dict:
  """Parses "a=1,b=True" into {"a": 1, "b": True}."""
  fields = {}
  for part in text.split(",") if text else []:
    name, value = part.split("=")
    fields[name] = eval(value, {})  # pylint: disable=eval-used
  return fields


def _remat(text: str | None, default: RematConfig) -> RematConfig:
  return RematConfig(**_fields(text)) if text else default


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="graphcast")
  parser.add_argument("--hardware", default="tpu_v4")
  parser.add_argument("--rollout", default="1")
  parser.add_argument(
      "--remat", default=None, help="RematConfig fields, e.g. rollout_step=True,..."
  )
  parser.add_argument(
      "--points", action="store_true", help="the calibration points, analytic vs XLA:TPU"
  )
  parser.add_argument("--cached", action="store_true", help="with --points: compile nothing")
  parser.add_argument(
      "--spatial",
      type=int,
      default=1,
      help="devices sharing one example (a data x space mesh, one example per group)",
  )
  parser.add_argument(
      "--per_group_batch",
      type=int,
      default=1,
      help="with --spatial: examples per group of devices (the global batch shrinks)",
  )
  parser.add_argument(
      "--edge_block_size", default="config", help="model.edge_block_size: an int, none or config"
  )
  parser.add_argument(
      "--model", default=None, help="ModelConfig fields, e.g. grid_parts_per_edge=True"
  )
  args = parser.parse_args()
  if args.points:
    points(args.hardware, args.cached)
    return
  cfg = getattr(experiments, args.config)()
  if args.spatial > 1:
    fiddlers.devices(cfg, cfg.mesh.num_devices, args.per_group_batch, args.spatial)
  if args.edge_block_size != "config":
    cfg.model.edge_block_size = (
        None if args.edge_block_size == "none" else int(args.edge_block_size)
    )
  for name, value in _fields(args.model).items():
    setattr(cfg.model, name, value)
  experiment = fdl.build(cfg)
  model = experiment.model
  remat = _remat(args.remat, model.remat)
  n = experiment.mesh.num_devices or 1
  groups = n // experiment.mesh.spatial
  batch = max(1, experiment.data.global_batch_size // groups)
  print(
      f"{args.config}: {n} x {args.hardware}, spatial {experiment.mesh.spatial}, edge blocks "
      f"{model.edge_block_size}, {batch} example(s) per group of {experiment.mesh.spatial}"
  )
  print(
      f"{'config':16s} {'roll':>4s} {'remat':40s} {'temp':>6s} {'args':>6s}"
      f" {'peak':>6s} {'analytic':>8s} {'FLOP':>9s} {'bytes':>9s}"
      f" {'compile':>7s}  verdict"
  )
  for rollout in [int(r) for r in args.rollout.split(",")]:
    x = xla_cost.analyze(
        experiment,
        rollout_steps=rollout,
        remat=remat,
        precision=model.precision,
        batch_per_device=batch,
        hardware=args.hardware,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    part_model, part_remat = spatial_cost.part_settings(model, remat, experiment.mesh.spatial)
    ana = cost_model.step_cost(
        part_model,
        experiment.task,
        rollout_steps=rollout,
        batch_per_device=batch,
        num_devices=n,
        shard_params=experiment.mesh.shard_params,
        remat=part_remat,
        precision=model.precision,
        retention=hardware_lib.get(args.hardware).retention,
        graph=spatial_cost.part_sizes(model, experiment.mesh.spatial),
    )
    num = lambda v: "n/a" if v is None else f"{v:9.3g}"
    verdict = "fits" if x.fits else "DOES NOT FIT: " + x.reason
    print(
        f"{args.config:16s} {rollout:4d} {_label(remat):40s}"
        f" {x.temp_bytes / GiB:6.2f} {x.argument_bytes / GiB:6.2f}"
        f" {x.peak_bytes / GiB:6.2f} {ana.peak_bytes / GiB:8.2f}"
        f" {num(x.flops)} {num(x.bytes_accessed)}"
        f" {x.compile_seconds:6.0f}s  {verdict}"
        + (f" (host memory {x.host_bytes / GiB:.2f} GiB)" if x.host_bytes else ""),
        flush=True,
    )


def points(hardware: str, cached_only: bool) -> None:
  """Analytic peak / XLA:TPU peak at `calibration.XLA_TPU_PEAKS`."""
  from graphcast_fdl.train import schedule as schedule_lib  # pylint: disable=g-import-not-at-top

  print(
      f"{'config':16s} {'roll':>4s} {'remat':44s} {'XLA:TPU':>8s} {'analytic':>8s}"
      f" {'ratio':>5s}  XLA:TPU figure from"
  )
  for point in calibration.XLA_TPU_PEAKS:
    experiment = fdl.build(getattr(experiments, point.config)())
    remat = point.remat or experiment.model.remat
    experiment = dataclasses.replace(
        experiment,
        model=dataclasses.replace(experiment.model, remat=remat),
        schedule=schedule_lib.Schedule(
            phases=(schedule_lib.Phase("p", num_steps=1, rollout_steps=point.rollout_steps),)
        ),
    )
    (phase,) = estimator.estimate(experiment, hardware).phases
    kwargs = dict(
        rollout_steps=point.rollout_steps,
        remat=remat,
        precision=experiment.model.precision,
        batch_per_device=1,
        hardware=hardware,
    )
    x = xla_cost.cached(experiment, **kwargs)
    if x is None and not cached_only:
      x = xla_cost.analyze(
          experiment, progress=lambda line: print(line, file=sys.stderr, flush=True), **kwargs
      )
    xla, source = (
        (x.peak_bytes / GiB, "the cache" + ("" if x.fits is not False else " (required)"))
        if x is not None
        else (point.peak_gib, point.source)
    )
    print(
        f"{point.config:16s} {point.rollout_steps:4d} {_label(remat):44s} {xla:8.2f}"
        f" {phase.peak_bytes_per_device / GiB:8.2f}"
        f" {phase.peak_bytes_per_device / GiB / xla:5.2f}  {source}",
        flush=True,
    )


def _label(remat: RematConfig) -> str:
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top

  label = estimator.remat_label(remat, None)
  extra = {
      "saves prediction": remat.rollout_saves == "prediction",
      "offload": remat.offload_rollout,
      "host targets": remat.host_targets,
      "host inputs": remat.host_inputs,
  }
  return ",".join([label] + [name for name, on in extra.items() if on])


if __name__ == "__main__":
  main()
