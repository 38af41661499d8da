"""Published GraphCast training times beside the estimator's predictions.

  python benchmarks/estimator_vs_published.py           # the table
  python benchmarks/estimator_vs_published.py --refit   # new EFFICIENCY constants

One efficiency factor per hardware family is fitted to one figure
(`calibration.TPU_FIT` for TPUs, a measured train step for this CPU); every
other row is a prediction. The goal is a ratio within 0.75..1.25. The last
block shows how the ratios move if the TPU factor were fitted to another row.
It also prints the XLA reference points measured from the published
implementation beside the analytic cost model.
"""

from __future__ import annotations

import argparse
import dataclasses

import fiddle as fdl

from graphcast_fdl import experiments
from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import calibration
from graphcast_fdl.analysis import cost_model
from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.model.config import ModelConfig

DAY = calibration.DAY
GiB = 2**30

# XLA CPU cost/memory analysis of the published implementation's loss+grad,
# batch 1, 1 step (from the issue that asked for this estimator).
XLA_REFERENCE = (
    ("1 deg/13 lev/M5 f32", ModelConfig(resolution=1.0, mesh_size=5,
                                        precision="float32"),
     task_lib.task_13(), 1.24e13, 3.7e11, 42.8),
    ("1 deg/13 lev/M5 bf16", ModelConfig(resolution=1.0, mesh_size=5),
     task_lib.task_13(), None, None, 30.0),
    ("0.25 deg/37 lev/M6 bf16", ModelConfig(resolution=0.25, mesh_size=6),
     task_lib.task_37(), 8.9e13, 3.1e12, 231.0),
)


def experiment_for(figure: calibration.PublishedFigure):
  cfg = getattr(experiments, figure.config)()
  experiments.devices(cfg, n=figure.num_devices)
  if figure.fit_memory:
    experiments.fit_memory(cfg, hardware=figure.hardware)
  return fdl.build(cfg)


def predicted_seconds(figure, efficiency=None) -> float:
  est = estimator.estimate(experiment_for(figure), figure.hardware,
                           efficiency=efficiency)
  return sum(p.duration_seconds for p in est.phases
             if not figure.phases or p.name in figure.phases)


def fit(figure) -> float:
  """The efficiency that makes `figure` come out exactly.

  duration(eff) = A / eff + C (C: all-reduce time), so two evaluations
  give A and C.
  """
  d1, d2 = predicted_seconds(figure, 1.0), predicted_seconds(figure, 0.5)
  a = d2 - d1
  return a / (figure.seconds - (d1 - a))


def cpu_fit_step_seconds(efficiency=None) -> float:
  """Estimated train step of the golden c config (4 deg, f32) on this CPU."""
  model = ModelConfig(resolution=4.0, mesh_size=3, latent_size=32,
                      gnn_msg_steps=4, precision="float32")
  cost = cost_model.step_cost(model, task_lib.task_13())
  eff = calibration.efficiency("cpu") if efficiency is None else efficiency
  return estimator.step_seconds(cost, "float32", hardware_lib.this_cpu(), 1,
                                eff)[0]


def fit_cpu() -> float:
  return cpu_fit_step_seconds(1.0) / calibration.CPU_FIT_STEP_SECONDS


def measure_demo(repeats: int = 10):
  """Predicted vs measured step (loss + grad, no optimizer) of `demo`."""
  import time  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import sizes, xla_cost  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  experiment = fdl.build(experiments.demo())
  model, task = experiment.model, experiment.task
  g = sizes.graph_sizes(model)
  batch_size = experiment.data.global_batch_size
  predictor = predictor_lib.Predictor(model, task, xla_cost.dummy_stats(task))
  shapes = xla_cost.batch_shapes(task, g.grid_lat, g.grid_lon, batch_size, 1)
  batch = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  step = jax.jit(jax.value_and_grad(lambda p, b: predictor.loss(p, b)[0]))
  jax.block_until_ready(step(params, batch))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step(params, batch))
    times.append(time.perf_counter() - start)
  measured = sorted(times)[len(times) // 2]
  est = estimator.estimate(experiment, "cpu")
  predicted = est.phases[0].step_seconds
  print(f"demo ({model.resolution} deg, M{model.mesh_size}, latent "
        f"{model.latent_size}, batch {batch_size}, {model.precision}) on this "
        f"CPU: measured median {measured:.4f} s (loss+grad), predicted "
        f"{predicted:.4f} s (train step), ratio {predicted / measured:.2f}")


def _days(s):
  return f"{s / DAY:6.2f} d"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--refit", action="store_true",
                      help="print freshly fitted EFFICIENCY constants")
  parser.add_argument("--measure_demo", action="store_true",
                      help="time loss+grad at the demo size on this CPU and "
                      "compare with the estimate")
  args = parser.parse_args()
  if args.measure_demo:
    measure_demo()
    return
  if args.refit:
    print(f'EFFICIENCY = {{"tpu": {fit(calibration.TPU_FIT)!r}, '
          f'"cpu": {fit_cpu()!r}}}')
    return

  print(f"TPU efficiency {calibration.efficiency('tpu'):.4f}: "
        f"{calibration.EFFICIENCY_SOURCE['tpu']}")
  print(f"{'figure':48s} {'published':>9s} {'predicted':>9s} {'ratio':>6s}  role")
  for figure in calibration.PUBLISHED:
    pred = predicted_seconds(figure)
    role = "fitted" if figure is calibration.TPU_FIT else "prediction"
    print(f"{figure.name:48s} {_days(figure.seconds):>9s} {_days(pred):>9s}"
          f" {pred / figure.seconds:6.2f}  {role}")
  step = predicted_seconds(calibration.TPU_FIT) / 300_000
  print(f"implied 0.25 deg 1-step step time on TPU v4: {step:.2f} s")
  print(f"CPU: golden c train step measured {calibration.CPU_FIT_STEP_SECONDS}"
        f" s, estimated {cpu_fit_step_seconds():.4f} s (fitted, "
        f"efficiency {calibration.efficiency('cpu'):.4f})")

  print("\nIf the TPU factor were fitted to another row (ratios per row):")
  for target in calibration.PUBLISHED:
    eff = fit(target)
    ratios = [predicted_seconds(f, eff) / f.seconds for f in calibration.PUBLISHED]
    print(f"  fit on {target.name:46s} eff {eff:.3f}: "
          + " ".join(f"{r:5.2f}" for r in ratios))

  print("\nXLA reference (published implementation, CPU backend) vs analytic:")
  print(f"{'config':26s} {'FLOP xla':>9s} {'analytic':>9s} {'bytes xla':>9s}"
        f" {'analytic':>9s} {'temps GiB xla':>13s} {'act+tmp ana':>11s}")
  for name, model, task, flops, nbytes, temps in XLA_REFERENCE:
    c = cost_model.step_cost(model, task, published_layout=True)
    fmt = lambda x: f"{x:9.3g}" if x else f"{'-':>9s}"
    print(f"{name:26s} {fmt(flops)} {c.flops:9.3g} {fmt(nbytes)}"
          f" {c.bytes_accessed:9.3g} {temps:13.1f}"
          f" {(c.activation_bytes + c.temporary_bytes) / GiB:11.1f}")


if __name__ == "__main__":
  main()
