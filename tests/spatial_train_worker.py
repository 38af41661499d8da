"""Run by test_spatial.py in a fresh process with 4 virtual CPU devices.

Two train steps of the tiny model on a global batch of 4, on a (data 4) mesh
with the plain `Predictor` and on a (data 2, space 2) mesh with the
`SpatialPredictor`, its batch placed whole on each device of a group or in
latitude bands (`place_batch`); prints one JSON line with the losses, the
largest relative difference of the parameters afterwards and the shapes of
the band-placed batch's per-device shards.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import model_fakes  # pylint: disable=g-import-not-at-top
from graphcast_fdl import graph  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model import spatial  # pylint: disable=g-import-not-at-top
from graphcast_fdl.model.config import ModelConfig  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import config  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import sharding  # pylint: disable=g-import-not-at-top
from graphcast_fdl.train import train_step as train_step_lib  # pylint: disable=g-import-not-at-top


def main():
  model = ModelConfig(
      resolution=30, mesh_size=2, latent_size=16, gnn_msg_steps=3, precision="float32"
  )
  graphs = graph.build_graphs(30.0, True, 2, cache_dir=None)
  args = (model, model_fakes.TASK, model_fakes.stats(), graphs)
  tx = optimizer_lib.make_optimizer(config.OptimizerConfig())
  batches = [model_fakes.batch(steps=2, batch_size=4, seed=s) for s in (1, 2)]
  out = {}
  for name, spatial_split in (("data4", 1), ("data2_space2", 2), ("bands", 2)):
    mesh = sharding.make_mesh(config.MeshConfig(num_devices=4, spatial=spatial_split))
    out[f"{name}_mesh"] = dict(mesh.shape)
    place = batch_shardings = None
    if spatial_split == 1:
      loss_fn = sharding.data_parallel(predictor_lib.Predictor(*args).loss, mesh)
    else:
      split = spatial.SpatialPredictor(*args, mesh=mesh, data_axis="data")
      loss_fn = split.loss
      if name == "bands":
        place = split.place_batch
        batch_shardings = split.batch_shardings(batches[0])
    params = predictor_lib.Predictor(*args).init_params(jax.random.PRNGKey(0))
    state = train_step_lib.create_state(params, tx, jax.random.PRNGKey(1))
    shardings = train_step_lib.state_shardings(state, mesh, False)
    step = train_step_lib.jit_train_step(
        train_step_lib.make_train_step(loss_fn, tx, lambda s: 1e-3),
        shardings,
        mesh,
        batch_shardings,
    )
    state = jax.device_put(state, shardings)
    losses = []
    for batch in batches:
      if place is not None:
        batch = sharding.to_global(*place(batch)[:1], mesh, place(batch)[1])
        out["bands_shards"] = {
            k: [list(s.data.shape) for s in v.addressable_shards]
            for k, v in (
                ("temperature", batch.targets["temperature"]),
                ("day_progress_cos", batch.forcings["day_progress_cos"]),
            )
        }
      state, metrics = step(state, batch)
      losses.append(float(metrics["loss"]))
    out[f"{name}_losses"] = losses
    out[f"{name}_params"] = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  reference = out.pop("data4_params")
  for name, key in (
      ("data2_space2", "max_rel_diff_params"),
      ("bands", "bands_max_rel_diff_params"),
  ):
    params = out.pop(f"{name}_params")
    diffs = [np.abs(a - b).max() / max(np.abs(b).max(), 1e-30) for a, b in zip(params, reference)]
    out[key] = float(max(diffs))
    flat = lambda tree: np.concatenate([np.ravel(x) for x in tree]).astype(np.float64)
    a, b = flat(params), flat(reference)
    out[key.replace("max_", "norm_")] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
  print(json.dumps(out))


if __name__ == "__main__":
  main()
