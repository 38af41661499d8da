"""Run by test_spatial.py in a fresh process with 8 virtual CPU devices.

Prints one JSON line: for spatial splits K of the tiny model on real graphs,
without and with every remat policy, the float32 loss and the relative
differences of loss and gradients (and of a 2-step forecast rollout and of
persistence) from the unsplit `Predictor`; and the same differences of the
unsplit model from itself on the examples in the other order (the float32
floor of a changed summation order).
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dataclasses  # pylint: disable=g-import-not-at-top,g-bad-import-order

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top

import model_fakes  # pylint: disable=g-import-not-at-top
from graphcast_fdl import graph  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import spatial  # pylint: disable=g-import-not-at-top
from graphcast_fdl.cli import eval_flags  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.config import ModelConfig, RematConfig  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import config as config_lib  # pylint: disable=g-import-not-at-top


def rel_diff(a, b) -> float:
  """|a - b| / |b| in the 2-norm over all leaves (0 when both are zero)."""
  a = np.concatenate([np.ravel(x).astype(np.float64) for x in jax.tree.leaves(a)])
  b = np.concatenate([np.ravel(x).astype(np.float64) for x in jax.tree.leaves(b)])
  scale, diff = np.linalg.norm(b), np.linalg.norm(a - b)
  return float(diff / scale) if scale else (0.0 if diff == 0 else np.inf)


def array_rel_diff(a, b) -> float:
  """The largest over arrays of max |a - b| / max |b| (an array of zeros:
  max |a - b| itself)."""
  out = 0.0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    diff, scale = np.abs(x - y).max(), np.abs(y).max()
    out = max(out, float(diff / scale if scale else diff))
  return out


def config(name: str) -> ModelConfig:
  model = ModelConfig(
      resolution=30, mesh_size=2, latent_size=16, gnn_msg_steps=3, precision="float32"
  )
  if name == "remat":  # Every remat policy and edge blocking on.
    model = dataclasses.replace(
        model,
        edge_block_size=40,
        remat=RematConfig(
            rollout_step=True, processor_every_k=2, encoder_decoder=True, grid_block_size=16
        ),
    )
  return model


def main():
  graphs = graph.build_graphs(30.0, True, 2, cache_dir=None)
  batch = model_fakes.batch(steps=2, batch_size=2)
  out = {}
  for name, splits in (("plain", (2, 4)), ("remat", (4,))):
    model = config(name)
    base = predictor_lib.Predictor(model, model_fakes.TASK, model_fakes.stats(), graphs)
    params = base.init_params(jax.random.PRNGKey(0))
    grad_fn = lambda p: jax.jit(jax.value_and_grad(lambda params, b: p.loss(params, b)[0]))(
        params, batch
    )  # pylint: disable=cell-var-from-loop
    loss_1, grads_1 = grad_fn(base)
    out[f"{name}_loss_1"] = float(loss_1)
    if name == "plain":
      # The float32 floor: the unsplit model on the same two examples in the
      # other order (the same sums, reordered).
      reordered = jax.tree.map(lambda x: x[::-1], batch)
      _, grads_r = jax.jit(jax.value_and_grad(lambda p, b: base.loss(p, b)[0]))(params, reordered)
      out["floor_rel_grads"] = rel_diff(grads_r, grads_1)
      out["floor_array_rel_grads"] = array_rel_diff(grads_r, grads_1)
    for k in splits:
      mesh = Mesh(np.asarray(jax.devices()[:k]), ("space",))
      split = spatial.SpatialPredictor(
          model, model_fakes.TASK, model_fakes.stats(), graphs, mesh=mesh
      )
      loss, grads = grad_fn(split)
      out[f"{name}_loss_{k}"] = float(loss)
      out[f"{name}_rel_loss_{k}"] = rel_diff(loss, loss_1)
      out[f"{name}_rel_grads_{k}"] = rel_diff(grads, grads_1)
      out[f"{name}_array_rel_grads_{k}"] = array_rel_diff(grads, grads_1)
      out[f"{name}_same_tree_{k}"] = jax.tree.structure(grads) == jax.tree.structure(grads_1)
      out[f"{name}_halo_{k}"] = split.partition.mesh_edges.halo_size
      if name == "plain":  # The forecast rollout, split the same way.
        rollout = lambda p: jax.jit(p.rollout, static_argnums=3)(
            params, batch.inputs, batch.forcings, 2
        )  # pylint: disable=cell-var-from-loop
        out[f"rollout_rel_{k}"] = rel_diff(rollout(split), rollout(base))
        # Persistence (the trainer's eval bar), split like the loss.
        persistence = lambda p: jax.jit(p.persistence_loss)(batch)  # pylint: disable=cell-var-from-loop
        out[f"persistence_rel_{k}"] = rel_diff(persistence(split), persistence(base))
  # `evaluate` and `forecast` build a split predictor from mesh.spatial.
  mesh_config = config_lib.MeshConfig(spatial=4)
  built = eval_flags.predictor_for(
      config("plain"), model_fakes.TASK, model_fakes.stats(), mesh_config
  )
  out["eval_predictor_parts"] = built.partition.num_parts
  print(json.dumps(out))


if __name__ == "__main__":
  main()
