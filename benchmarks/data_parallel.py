"""Per-device cost of the compiled train step as the device count grows.

  python benchmarks/data_parallel.py

Compiles the trainer's own train step for the `demo` config on 1, 2, 4 and 8
virtual CPU devices (one example per device, so the global batch grows with
the devices) and prints XLA's per-device FLOPs and temporaries beside the
analytic model's. With data parallelism working, every row matches the
1-device row: each device computes only its share of the batch.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import fiddle as fdl  # pylint: disable=g-import-not-at-top

from graphcast_fdl import experiments  # pylint: disable=g-import-not-at-top
from graphcast_fdl.analysis import cost_model  # pylint: disable=g-import-not-at-top
from graphcast_fdl.analysis import xla_cost  # pylint: disable=g-import-not-at-top

MiB = 2**20


def main():
  print(
      f"{'devices':>7s} {'global batch':>12s} {'FLOP/dev xla':>12s}"
      f" {'FLOP/dev ana':>12s} {'temp MiB/dev xla':>16s}"
      f" {'act+tmp MiB ana':>15s}"
  )
  for n in (1, 2, 4, 8):
    cfg = experiments.demo()
    experiments.devices(cfg, n=n, per_device_batch=1)
    experiment = fdl.build(cfg)
    model = experiment.model
    xla = xla_cost.analyze(
        experiment, rollout_steps=1, remat=model.remat, precision=model.precision
    )
    ana = cost_model.step_cost(model, experiment.task, num_devices=n)
    print(
        f"{n:7d} {n:12d} {xla.flops:12.3g} {ana.flops:12.3g}"
        f" {xla.temp_bytes / MiB:16.1f}"
        f" {(ana.activation_bytes + ana.temporary_bytes) / MiB:15.1f}"
        f"   ({xla.devices})"
    )


if __name__ == "__main__":
  main()
