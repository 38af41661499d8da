"""Run by test_spatial_cost.py in a fresh process with 4 virtual CPU devices.

Prints one JSON line: for spatial splits K of a tiny experiment on 4
devices (one example per group), XLA's per-device argument bytes of the
compiled train step (`analysis.xla_cost`, the trainer's jitted step with
the predictor's batch shardings) and the state's share of them.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fiddle as fdl  # pylint: disable=g-import-not-at-top,g-bad-import-order
import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from graphcast_fdl import experiments  # pylint: disable=g-import-not-at-top
from graphcast_fdl.analysis import xla_cost  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import train_step as train_step_lib  # pylint: disable=g-import-not-at-top


def tiny(spatial: int):
  cfg = experiments.graphcast_small()
  experiments.resolution(cfg, 30.0, mesh_size=2)
  cfg.model.latent_size = 16
  cfg.model.gnn_msg_steps = 2
  cfg.model.precision = "float32"
  experiments.devices(cfg, 4, 1, spatial)
  return fdl.build(cfg)


def main():
  out = {}
  for spatial in (1, 2, 4):
    experiment = tiny(spatial)
    cost = xla_cost.analyze(
        experiment,
        rollout_steps=2,
        remat=experiment.model.remat,
        precision="float32",
        batch_per_device=1,
        use_cache=False,
    )
    tx = optimizer_lib.make_optimizer(experiment.optimizer)
    state = jax.eval_shape(
        lambda p: train_step_lib.create_state(p, tx, jax.random.PRNGKey(0)),
        predictor_lib.param_shapes(experiment.model, experiment.task),
    )
    state_bytes = sum(
        float(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state)
    )
    out[f"args_{spatial}"] = cost.argument_bytes
    out[f"state_{spatial}"] = state_bytes
    out[f"devices_{spatial}"] = cost.devices
  print(json.dumps(out))


if __name__ == "__main__":
  main()
