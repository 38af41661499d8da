"""The published .npz checkpoint format: import, export, errors, released configs."""

import dataclasses
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from graphcast_fdl import checkpoints
from graphcast_fdl import task as task_lib
from graphcast_fdl.checkpoints import npz_format
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig
from conftest import golden_dir

FOLDERS = ("a_4deg_m3_l32", "c_4deg_m3_l32_f32", "d_4deg_m3_l32_ar3", "e_4deg_precipout_b2")
# The released checkpoints (DESIGN.md): GraphCast, GraphCast_small,
# GraphCast_operational.
RELEASED = {
    "GraphCast": (
        ModelConfig(resolution=0.25, mesh_size=6, latent_size=512, gnn_msg_steps=16),
        task_lib.task_37(),
    ),
    "GraphCast_small": (
        ModelConfig(resolution=1.0, mesh_size=5, latent_size=512, gnn_msg_steps=16),
        task_lib.task_13(),
    ),
    "GraphCast_operational": (
        ModelConfig(resolution=0.25, mesh_size=6, latent_size=512, gnn_msg_steps=16),
        task_lib.task_13_precip_out(),
    ),
}


@pytest.mark.parametrize("folder", FOLDERS)
def test_golden_round_trip_is_identical(folder, tmp_path):
  path = os.path.join(golden_dir(folder), "checkpoint.npz")
  ckpt = npz_format.load(path)
  assert ckpt.model.latent_size == 32 and ckpt.model.mesh_size == 3
  assert ckpt.model.mesh2grid_edge_normalization_factor is None
  assert ckpt.task.pressure_levels == task_lib.PRESSURE_LEVELS_13
  out = str(tmp_path / "out.npz")
  npz_format.save(out, ckpt)
  ref, ours = np.load(path), np.load(out)
  assert ours.files == ref.files  # Same keys in the same order.
  for key in ref.files:
    assert ours[key].dtype == ref[key].dtype, key
    assert ours[key].shape == ref[key].shape, key
    np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


def test_task_and_model_configs_are_read():
  ckpt = npz_format.load(
      os.path.join(golden_dir("e_4deg_precipout_b2"), "checkpoint.npz"),
      precision="float32",
      edge_block_size=1000,
  )
  assert ckpt.task == task_lib.task_13_precip_out()
  assert ckpt.model.precision == "float32"
  assert ckpt.model.edge_block_size == 1000
  assert ckpt.model.resolution == 4.0


def _write(tmp_path, flat):
  path = str(tmp_path / "bad.npz")
  np.savez(path, **flat)
  return path


def _golden_flat():
  path = os.path.join(golden_dir("c_4deg_m3_l32_f32"), "checkpoint.npz")
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def test_missing_key_is_named(tmp_path):
  flat = _golden_flat()
  key = "params:mesh_gnn/~_networks_builder/processor_edges_2_mesh_mlp/~/linear_1:b"
  del flat[key]
  with pytest.raises(npz_format.CheckpointError, match="is missing") as e:
    npz_format.load(_write(tmp_path, flat))
  assert key in str(e.value) and "\n" not in str(e.value)


def test_extra_key_is_named(tmp_path):
  flat = _golden_flat()
  key = "params:mesh_gnn/~_networks_builder/processor_edges_9_mesh_mlp/~/linear_0:w"
  flat[key] = np.zeros((96, 32), np.float32)
  with pytest.raises(npz_format.CheckpointError, match="not expected") as e:
    npz_format.load(_write(tmp_path, flat))
  assert key in str(e.value)
  flat = _golden_flat()
  flat["params:foo/bar:w"] = np.zeros(3)
  with pytest.raises(npz_format.CheckpointError, match="params:foo/bar:w"):
    npz_format.load(_write(tmp_path, flat))


def test_wrong_shape_is_named(tmp_path):
  flat = _golden_flat()
  key = "params:grid2mesh_gnn/~_networks_builder/encoder_nodes_grid_nodes_mlp/~/linear_0:w"
  flat[key] = np.zeros((185, 32), np.float32)
  with pytest.raises(npz_format.CheckpointError, match=r"\(185, 32\).*\(186, 32\)") as e:
    npz_format.load(_write(tmp_path, flat))
  assert key in str(e.value)


def test_missing_config_key_is_named(tmp_path):
  flat = _golden_flat()
  del flat["model_config:latent_size"]
  with pytest.raises(npz_format.CheckpointError, match="model_config:latent_size"):
    npz_format.load(_write(tmp_path, flat))


@pytest.mark.parametrize("name", RELEASED)
def test_released_configs_map_every_key(name):
  model, task = RELEASED[name]
  shapes = predictor_lib.param_shapes(model, task)  # Abstract: no memory.
  leaves = jax.tree_util.tree_flatten_with_path(shapes)[0]
  keys = set()
  for path, leaf in leaves:
    path = tuple(p.key for p in path)
    key = npz_format.npz_key(path)
    assert npz_format.param_path(key) == path
    keys.add(key)
  assert len(keys) == len(leaves)
  # MLP+LayerNorm blocks have 6 arrays: 6 in grid2mesh_gnn, 1 + 2 per step
  # in mesh_gnn, 4 in mesh2grid_gnn; plus the decoder MLP's 4 (118 at 4 steps).
  assert len(keys) == 6 * (6 + 1 + 2 * 16 + 4) + 4
  npz_format.check_params(
      {npz_format.npz_key(tuple(p.key for p in path)): leaf for path, leaf in leaves}, model, task
  )
  num_params = sum(int(np.prod(leaf.shape)) for _, leaf in leaves)
  first = shapes["grid2mesh_gnn"]["encoder_nodes_grid_nodes_mlp"]["linear_0"]
  last = shapes["mesh2grid_gnn"]["decoder_nodes_grid_nodes_mlp"]["linear_1"]
  if name == "GraphCast":
    assert num_params == 36_348_131  # As published.
    assert first["w"].shape == (474, 512) and last["w"].shape == (512, 227)
  elif name == "GraphCast_small":
    assert first["w"].shape == (186, 512) and last["w"].shape == (512, 83)
  else:
    assert first["w"].shape == (184, 512) and last["w"].shape == (512, 83)


def test_export_of_new_params(tmp_path):
  model, task = RELEASED["GraphCast_small"]
  model = dataclasses.replace(model, latent_size=8, gnn_msg_steps=2)
  net = predictor_lib.network(model, task)
  params = net.init(jax.random.PRNGKey(0), method=type(net).param_dicts)["params"]
  path = str(tmp_path / "ours.npz")
  npz_format.save(path, npz_format.Checkpoint(params, model, task, description="test"))
  back = npz_format.load(path)
  assert back.task == task and back.description == "test"
  assert back.model.latent_size == 8
  jax.tree.map(np.testing.assert_array_equal, back.params, jax.device_get(params))


def test_load_params_reads_npz_and_orbax_alike(tmp_path):
  """The one loader: a `.npz` (placed like a target) and an Orbax run."""
  model, task = RELEASED["GraphCast_small"]
  model = dataclasses.replace(model, latent_size=8, gnn_msg_steps=2)
  params = jax.device_get(
      predictor_lib.network(model, task).init(
          jax.random.PRNGKey(0), method=predictor_lib.GraphCastNet.param_dicts
      )["params"]
  )
  path = str(tmp_path / "ours.npz")
  npz_format.save(path, npz_format.Checkpoint(params, model, task))
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params)
  loaded = checkpoints.load_params(path, model, task, target=target)
  assert loaded.model == model and loaded.task == task
  jax.tree.map(np.testing.assert_array_equal, loaded.params, params)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(loaded.params))

  with ocp.CheckpointManager(str(tmp_path / "run" / "checkpoints")) as manager:
    manager.save(7, args=ocp.args.Composite(params=ocp.args.StandardSave(params)))
  from_run = checkpoints.load_params(str(tmp_path / "run"), model, task)
  jax.tree.map(np.testing.assert_array_equal, from_run.params, params)

  smaller = dataclasses.replace(model, latent_size=4)
  with pytest.raises(ValueError, match="init_checkpoint=.*ours.npz: its parameter shapes"):
    checkpoints.load_params(
        path, model, task, field="init_checkpoint", target=predictor_lib.param_shapes(smaller, task)
    )
  with pytest.raises(checkpoints.CheckpointNotFound, match="--checkpoint=.*nothing.npz"):
    checkpoints.load_params(str(tmp_path / "nothing.npz"), model, task)
  with pytest.raises(checkpoints.CheckpointNotFound, match="no checkpoint in"):
    checkpoints.load_params(str(tmp_path), model, task)
