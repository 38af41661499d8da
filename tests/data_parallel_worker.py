"""Run by test_data_parallel.py in a fresh process with 4 virtual CPU devices.

Prints one JSON line: the loss and gradient of the tiny model on a batch of 4,
computed on one device and data-parallel over 4 (`sharding.data_parallel`),
and the per-device FLOPs XLA counts for each compiled program.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import model_fakes  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import config  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import sharding  # pylint: disable=g-import-not-at-top


def flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def main():
  model = ModelConfig(
      resolution=30, mesh_size=1, latent_size=16, gnn_msg_steps=3, precision="float32"
  )
  predictor = predictor_lib.Predictor(
      model, model_fakes.TASK, model_fakes.stats(), model_fakes.graphs()
  )
  batch = model_fakes.batch(steps=2, batch_size=4)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  out = {}
  for n in (1, 4):
    mesh = sharding.make_mesh(config.MeshConfig(num_devices=n))
    loss_fn = sharding.data_parallel(predictor.loss, mesh)
    step = jax.jit(
        jax.value_and_grad(lambda p, b: loss_fn(p, b)[0]),
        in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
    )
    loss, grads = step(params, batch)
    out[f"loss_{n}"] = float(loss)
    out[f"grads_{n}"] = [np.asarray(g).ravel().tolist() for g in jax.tree.leaves(grads)]
    out[f"flops_{n}"] = flops(step.lower(params, batch).compile())
  print(json.dumps(out))


if __name__ == "__main__":
  main()
