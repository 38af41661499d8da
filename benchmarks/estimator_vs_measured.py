"""The estimator's step time against our own train step measured on this CPU.

  python benchmarks/estimator_vs_measured.py             # the table
  python benchmarks/estimator_vs_measured.py --refit     # new CPU constant

Times the trainer's jitted train step (loss + grad + clipped AdamW, one
device, real arrays) at a few small sizes and prints the analytic estimate
beside it. The CPU efficiency factor is fitted to the first row (the `demo`
config's step, `calibration.CPU_FIT_STEP_SECONDS`); the other rows are
predictions: another width and precision, a 3-step rollout, and remat.
CPU timings on a shared 2-core machine are noisy: read ratios to +-15%.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import calibration
from graphcast_fdl.analysis import estimator
from graphcast_fdl.model.config import ModelConfig, RematConfig

DEMO = ModelConfig(
    resolution=4.0, mesh_size=3, latent_size=32, gnn_msg_steps=4, precision="float32"
)
# (label, model, per-device batch, rollout steps)
SIZES = (
    ("demo: 4 deg/M3/L32/4 steps f32, batch 2 (fitted)", DEMO, 2, 1),
    ("demo, 3-step rollout", DEMO, 2, 3),
    (
        "demo, 3-step rollout, remat step+proc/2+seg/2+grid 1024",
        dataclasses.replace(
            DEMO,
            remat=RematConfig(
                rollout_step=True, processor_every_k=2, rollout_segment=2, grid_block_size=1024
            ),
        ),
        2,
        3,
    ),
    (
        "2 deg/M4/L64/8 steps bf16, batch 1",
        ModelConfig(
            resolution=2.0, mesh_size=4, latent_size=64, gnn_msg_steps=8, precision="bfloat16"
        ),
        1,
        1,
    ),
)


def measure(model: ModelConfig, batch_size: int, rollout: int, repeats: int = 7) -> float:
  """Median seconds of the real train step on one device."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.analysis import sizes, xla_cost  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train import config, optimizer, schedule  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.train import sharding, train_step  # pylint: disable=g-import-not-at-top

  task = task_lib.task_13()
  g = sizes.graph_sizes(model)
  predictor = predictor_lib.Predictor(model, task, xla_cost.dummy_stats(task))
  shapes = xla_cost.batch_shapes(task, g.grid_lat, g.grid_lon, batch_size, rollout)
  batch = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  mesh = sharding.make_mesh(config.MeshConfig(num_devices=1))
  tx = optimizer.make_optimizer(config.OptimizerConfig())
  params = predictor.init_params(jax.random.PRNGKey(0))
  state = train_step.create_state(params, tx, jax.random.PRNGKey(1))
  shardings = jax.tree.map(lambda _: sharding.replicated(mesh), state)
  lr = optimizer.schedule_learning_rate(
      schedule.Schedule(phases=(schedule.Phase("p", num_steps=10, rollout_steps=rollout),))
  )
  step = train_step.jit_train_step(
      train_step.make_train_step(predictor.loss, tx, lr), shardings, mesh
  )
  state, _ = step(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, _ = step(state, batch)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  return sorted(times)[len(times) // 2]


def predicted(
    model: ModelConfig, batch_size: int, rollout: int, efficiency: float | None = None
) -> float:
  return estimator.model_step_seconds(
      model,
      task_lib.task_13(),
      "cpu",
      rollout_steps=rollout,
      batch_per_device=batch_size,
      efficiency=efficiency,
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument(
      "--refit", action="store_true", help="measure the fitted row and print the new constant"
  )
  args = parser.parse_args()
  if args.refit:
    label, model, batch, rollout = SIZES[0]
    seconds = measure(model, batch, rollout, repeats=15)
    print(f"# {label}: measured {seconds:.4f} s")
    print(f"CPU_FIT_STEP_SECONDS = {seconds:.4f}")
    print(f'EFFICIENCY["cpu"] = {predicted(model, batch, rollout, 1.0) / seconds!r}')
    return
  print(
      f"CPU efficiency {calibration.efficiency('cpu'):.4f}: "
      f"{calibration.EFFICIENCY_SOURCE['cpu']}"
  )
  print(f"{'size':58s} {'measured':>9s} {'predicted':>9s} {'ratio':>6s}")
  for label, model, batch, rollout in SIZES:
    seconds = measure(model, batch, rollout)
    guess = predicted(model, batch, rollout)
    print(f"{label:58s} {seconds:9.4f} {guess:9.4f} {guess / seconds:6.2f}")


if __name__ == "__main__":
  main()
