"""XLA:TPU's per-chip memory of our train step at real sizes (no TPU needed).

Compiles the trainer's own train step for a described TPU slice
(`analysis.xla_cost`, needs `pip install -e ".[tpu]"`) and prints XLA:TPU's
figures beside the analytic model's, one row per (config, rollout, remat):

  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=1,2,12
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=12 \\
      --remat='rollout_step=True,processor_every_k=3,encoder_decoder=True,rollout_segment=4'
  python benchmarks/xla_tpu_memory.py --config=graphcast --rollout=12 \\
      --remat="rollout_step=True,processor_every_k=3,encoder_decoder=True,rollout_saves='prediction',offload_rollout=True,host_targets=True"

Figures are cached on disk per program (seconds on a rerun); a first compile
of the 0.25 deg model takes minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import fiddle as fdl

from graphcast_fdl import experiments
from graphcast_fdl.analysis import cost_model
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.model.config import RematConfig

GiB = 2**30


def _remat(text: str | None, default: RematConfig) -> RematConfig:
  if not text:
    return default
  fields = {}
  for part in text.split(","):
    name, value = part.split("=")
    fields[name] = eval(value, {})  # pylint: disable=eval-used
  return RematConfig(**fields)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="graphcast")
  parser.add_argument("--hardware", default="tpu_v4")
  parser.add_argument("--rollout", default="1")
  parser.add_argument(
      "--remat", default=None, help="RematConfig fields, e.g. rollout_step=True,..."
  )
  args = parser.parse_args()
  experiment = fdl.build(getattr(experiments, args.config)())
  model = experiment.model
  remat = _remat(args.remat, model.remat)
  n = experiment.mesh.num_devices or 1
  batch = max(1, experiment.data.global_batch_size // n)
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
    ana = cost_model.step_cost(
        dataclasses.replace(model, remat=remat),
        experiment.task,
        rollout_steps=rollout,
        batch_per_device=batch,
        num_devices=n,
        shard_params=experiment.mesh.shard_params,
        remat=remat,
        precision=model.precision,
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


def _label(remat: RematConfig) -> str:
  from graphcast_fdl.analysis import estimator  # pylint: disable=g-import-not-at-top

  label = estimator.remat_label(remat, None)
  extra = {
      "saves prediction": remat.rollout_saves == "prediction",
      "offload": remat.offload_rollout,
      "host targets": remat.host_targets,
  }
  return ",".join([label] + [name for name, on in extra.items() if on])


if __name__ == "__main__":
  main()
