"""Train step with explicit shardings, non-finite skipping, mesh and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from graphcast_fdl.checkpoints import orbax_params
from graphcast_fdl.train import checkpointing
from graphcast_fdl.train import config
from graphcast_fdl.train import optimizer
from graphcast_fdl.train import sharding
from graphcast_fdl.train import train_step as ts


def _loss(params, batch):
  err = batch["x"] @ params["w"] + params["b"] - batch["y"]
  loss = jnp.mean(err**2)
  return loss, {"y": loss}


def _setup():
  mesh = sharding.make_mesh(config.MeshConfig(num_devices=1))
  tx = optimizer.make_optimizer(config.OptimizerConfig())
  params = {"w": jnp.ones((3, 1)), "b": jnp.zeros(1)}
  state = ts.create_state(params, tx, jax.random.PRNGKey(0))
  shardings = ts.state_shardings(jax.eval_shape(lambda: state), mesh, False)
  step = ts.jit_train_step(ts.make_train_step(_loss, tx, lambda s: 1e-2 * (s + 1)), shardings, mesh)
  return mesh, jax.device_put(state, shardings), step


def _batch(mesh, value=1.0):
  return sharding.to_global(
      {"x": np.full((2, 3), value, np.float32), "y": np.zeros((2, 1), np.float32)}, mesh
  )


def test_step_updates_params_and_reports_metrics():
  mesh, state, step = _setup()
  new, metrics = step(state, _batch(mesh))
  assert int(new.step) == 1
  assert float(metrics["learning_rate"]) == pytest.approx(1e-2)
  assert float(metrics["loss"]) == pytest.approx(9.0)
  assert set(metrics["per_variable"]) == {"y"}
  assert bool(metrics["finite"])
  assert not np.allclose(new.params["w"], 1.0)
  assert not np.array_equal(new.rng, jax.random.PRNGKey(0))


def test_nonfinite_step_is_skipped_and_counted():
  mesh, state, step = _setup()
  state, _ = step(state, _batch(mesh))
  before = jax.tree.map(np.asarray, (state.params, state.opt_state))
  for expected_in_a_row in (1, 2):
    state, metrics = step(state, _batch(mesh, np.nan))
    assert not bool(metrics["finite"])
    assert int(state.nonfinite_in_a_row) == expected_in_a_row
  after = jax.tree.map(np.asarray, (state.params, state.opt_state))
  jax.tree.map(np.testing.assert_array_equal, before, after)
  assert int(state.step) == 3 and int(state.nonfinite_total) == 2
  state, _ = step(state, _batch(mesh))
  assert int(state.nonfinite_in_a_row) == 0 and int(state.nonfinite_total) == 2
  # The rate followed the global step across the skipped steps.
  assert float(optimizer.get_learning_rate(state.opt_state)) == pytest.approx(4e-2)


def test_mesh_rejects_more_devices_than_visible():
  with pytest.raises(sharding.MeshError, match="mesh.num_devices=99"):
    sharding.make_mesh(config.MeshConfig(num_devices=99))


def test_sharded_params_split_their_largest_divisible_dim():
  spec = sharding._sharded_spec  # pylint: disable=protected-access
  assert spec((6, 8), "data", 4) == P(None, "data")
  assert spec((3, 5), "data", 4) == P()
  assert spec((), "data", 4) == P()
  assert spec((8, 8), "data", 1) == P()


def test_checkpoint_round_trip_and_params_alone(tmp_path):
  mesh, state, step = _setup()
  state, _ = step(state, _batch(mesh))
  ckpt = checkpointing.Checkpointer(
      str(tmp_path), config.CheckpointConfig(every_steps=2, max_to_keep=2)
  )
  assert not ckpt.save(state, {"note": "odd step"})  # 1 is not a multiple of 2.
  assert ckpt.save(state, {"note": "forced"}, force=True)
  ckpt.wait()
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
  )
  restored = ckpt.restore(target)
  ckpt.close()
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  assert isinstance(restored, ts.TrainState)
  params = orbax_params.load(str(tmp_path), state.params)
  jax.tree.map(np.testing.assert_array_equal, params, state.params)


@pytest.mark.parametrize("knob", ["host_targets", "host_inputs"])
def test_host_batch_knobs_take_that_part_in_host_memory(knob):
  """`RematConfig.host_targets` / `host_inputs`: that part of the batch
  reaches the step in pinned host memory (the rest on the device) and the
  loss copies it over; the step's results do not change."""
  from graphcast_fdl.model.batch import Batch  # pylint: disable=g-import-not-at-top

  def loss(params, batch):
    to_device = lambda x: jax.device_put(x, jax.memory.Space.Device)
    return _loss(params, {"x": to_device(batch.inputs["x"]), "y": to_device(batch.targets["y"])})

  mesh = sharding.make_mesh(config.MeshConfig(num_devices=1))
  tx = optimizer.make_optimizer(config.OptimizerConfig())
  params = {"w": jnp.ones((3, 1)), "b": jnp.zeros(1)}
  state = ts.create_state(params, tx, jax.random.PRNGKey(0))
  shardings = ts.state_shardings(jax.eval_shape(lambda: state), mesh, False)
  local = Batch(
      inputs={"x": np.full((2, 3), 1.0, np.float32)},
      targets={"y": np.zeros((2, 1), np.float32)},
      forcings={},
  )
  on_host = {"host_targets": "targets", "host_inputs": "inputs"}[knob]
  results = []
  for host in (False, True):
    flags = {knob: host}
    batch = sharding.to_global(local, mesh, sharding.train_batch_sharding(mesh, **flags))
    for part in ("inputs", "targets"):
      kind = next(iter(getattr(batch, part).values())).sharding.memory_kind
      assert kind == ("pinned_host" if host and part == on_host else "device"), part
    train_step = ts.make_train_step(loss, tx, lambda s: 1e-2)
    step = ts.jit_train_step(train_step, shardings, mesh, **flags)
    fresh = jax.device_put(jax.tree.map(jnp.copy, state), shardings)  # donated
    results.append(step(fresh, batch))
  jax.tree.map(np.testing.assert_array_equal, results[0], results[1])
