"""Focused model tests on tiny random graphs: loss weights, normalisation,
rollout consistency, and that memory knobs leave results unchanged."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from graphcast_fdl.model import channels
from graphcast_fdl.model import losses
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.model.config import RematConfig
from graphcast_fdl.model.normalization import ChannelNormalization
import model_fakes

MODEL = ModelConfig(
    resolution=30, mesh_size=1, latent_size=16, gnn_msg_steps=3, precision="float32"
)


def _predictor(model=MODEL):
  return predictor_lib.Predictor(model, model_fakes.TASK, model_fakes.stats(), model_fakes.graphs())


def test_latitude_weights_with_poles():
  lat = np.linspace(-90, 90, 7)
  w = losses.latitude_weights(lat)
  np.testing.assert_allclose(w.mean(), 1.0)
  np.testing.assert_allclose(w, w[::-1])
  # Pole cells span a quarter-spacing cap: sin(d/4)^2 vs cos(lat) sin(d/2).
  d = np.deg2rad(30.0)
  expected = np.cos(np.deg2rad(lat)) * np.sin(d / 2)
  expected[[0, -1]] = np.sin(d / 4) ** 2
  np.testing.assert_allclose(w, expected / expected.mean())


def test_latitude_weights_without_poles():
  lat = np.arange(-87.5, 90, 5.0)
  w = losses.latitude_weights(lat)
  np.testing.assert_allclose(w, np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean())
  with pytest.raises(ValueError, match="not uniformly spaced"):
    losses.latitude_weights([-90, 0, 10, 90])


def test_level_weights():
  np.testing.assert_allclose(losses.level_weights([50, 100, 150]), [0.5, 1.0, 1.5])


def test_weighted_mse_matches_direct_formula():
  task = model_fakes.TASK
  layout = predictor_lib.layout(task)
  lat = np.linspace(-90, 90, model_fakes.N_LAT)
  loss_fn = losses.WeightedMSE(layout, lat, model_fakes.N_LON, task.pressure_levels)
  rng = np.random.default_rng(0)
  shape = (2, len(layout.outputs), model_fakes.N_LAT * model_fakes.N_LON)
  pred, target = rng.normal(size=shape), rng.normal(size=shape)
  total, per_var = loss_fn(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32))
  # Direct: per variable, mean over (level, lat, lon) of weighted squares.
  sq = ((pred - target) ** 2).reshape(2, -1, model_fakes.N_LAT, model_fakes.N_LON)
  sq = np.moveaxis(sq, 1, -1)  # [B, lat, lon, C]
  sq = sq * losses.latitude_weights(lat)[:, None, None]
  lev_w = losses.level_weights(task.pressure_levels)
  expected_total = 0
  for name in sorted(task.target_variables):
    idx = [i for i, c in enumerate(layout.outputs) if c[0] == name]
    w = np.array(
        [1.0 if layout.outputs[i][2] is None else lev_w[layout.outputs[i][2]] for i in idx]
    )
    expected = (sq[..., idx] * w).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(per_var[name], expected, rtol=1e-5)
    weight = 0.1 if name == "total_precipitation_6hr" else 1.0
    expected_total = expected_total + weight * expected
  np.testing.assert_allclose(total, expected_total, rtol=1e-5)


def test_normalisation_round_trip():
  task = model_fakes.TASK
  layout = predictor_lib.layout(task)
  norm = ChannelNormalization(model_fakes.stats(), layout, task.pressure_levels)
  batch = model_fakes.batch(steps=1)
  inputs = channels.stack_inputs(batch.inputs, layout.static, (7, 12))
  targets = channels.stack_steps(batch.targets, (7, 12))[0]
  base = norm.residual_base(inputs)
  normalised = norm.target(targets, base)
  np.testing.assert_allclose(norm.prediction(normalised, base), targets, rtol=1e-5, atol=1e-5)
  # Residual targets: zero change normalises to zero.
  residual = layout.last_input >= 0
  same = jnp.take(inputs, np.maximum(layout.last_input, 0), axis=1)
  np.testing.assert_allclose(np.asarray(norm.target(same, base))[:, residual], 0.0, atol=1e-6)
  # Precipitation is not an input: normalised by mean/stddev.
  stats = model_fakes.stats()
  c = [i for i, ch in enumerate(layout.outputs) if ch[0] == "total_precipitation_6hr"][0]
  np.testing.assert_allclose(
      np.asarray(normalised)[:, c],
      (np.asarray(targets)[:, c] - float(stats.mean["total_precipitation_6hr"]))
      / float(stats.stddev["total_precipitation_6hr"]),
      rtol=1e-5,
      atol=1e-6,
  )


def test_take_by_slices_equals_take_and_its_gradient():
  x = jnp.arange(2 * 9 * 3, dtype=jnp.float32).reshape(2, 9, 3)
  for index in ([4, 5, 6, 0, 1, 8], [3], [2, 2, 7]):
    runs = channels.slice_runs(index)
    assert sum(stop - start for start, stop in runs) == len(index)
    np.testing.assert_array_equal(
        channels.take_by_slices(x, runs, axis=1), jnp.take(x, np.array(index), axis=1)
    )
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * jnp.arange(len(index))[:, None]))(x)
    np.testing.assert_array_equal(
        grad(lambda x: channels.take_by_slices(x, runs, axis=1)),
        grad(lambda x: jnp.take(x, np.array(index), axis=1)),
    )
  assert channels.slice_runs([4, 5, 6, 0, 1, 8]) == ((4, 7), (0, 2), (8, 9))


def test_channel_layout_feeds_predictions_back():
  layout = predictor_lib.layout(model_fakes.TASK)
  n_in, n_out = len(layout.inputs), len(layout.outputs)
  channel = lambda n: jnp.arange(n, dtype=jnp.float32)[None, :, None]
  inputs, outputs = channel(n_in), 100 + channel(n_out)
  forcings = 200 + channel(len(layout.forcings))
  new = np.asarray(layout.next_inputs(inputs, outputs, forcings))[0, :, 0]
  for i, (name, frame, level) in enumerate(layout.inputs):
    if frame is None:
      assert new[i] == i, name  # Static.
    elif frame == 0:
      assert new[i] == layout.inputs.index((name, 1, level)), name
    elif name in model_fakes.TASK.target_variables:
      assert new[i] == 100 + layout.outputs.index((name, 0, level)), name
    else:
      assert new[i] == 200 + layout.forcings.index((name, 0, level)), name


def test_rollout_and_loss_chain_single_steps():
  predictor = _predictor()
  batch = model_fakes.batch(steps=2)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  rollout = jax.jit(predictor.rollout, static_argnums=3)
  loss = jax.jit(predictor.loss)
  two = rollout(params, batch.inputs, batch.forcings, 2)
  assert two["temperature"].shape == batch.targets["temperature"].shape

  first = lambda d: {k: v[:, :1] for k, v in d.items()}
  second = lambda d: {k: v[:, 1:] for k, v in d.items()}
  one = rollout(params, batch.inputs, first(batch.forcings), 1)
  # Inputs of step 2: last input frame then step-1 predictions / forcings.
  inputs2 = {}
  for name, x in batch.inputs.items():
    if name in model_fakes.TASK.target_variables:
      inputs2[name] = np.concatenate([x[:, 1:], one[name]], axis=1)
    elif name in model_fakes.TASK.forcing_variables:
      inputs2[name] = np.concatenate([x[:, 1:], batch.forcings[name][:, :1]], axis=1)
    else:
      inputs2[name] = x
  step2 = rollout(params, inputs2, second(batch.forcings), 1)
  for name in two:
    np.testing.assert_allclose(two[name][:, :1], one[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(two[name][:, 1:], step2[name], rtol=1e-4, atol=1e-4)

  # The rollout loss is the mean of the per-step losses.
  loss2, _ = loss(params, batch)
  loss_a, _ = loss(
      params,
      dataclasses.replace(batch, targets=first(batch.targets), forcings=first(batch.forcings)),
  )
  loss_b, _ = loss(
      params,
      dataclasses.replace(
          batch, inputs=inputs2, targets=second(batch.targets), forcings=second(batch.forcings)
      ),
  )
  np.testing.assert_allclose(loss2, (loss_a + loss_b) / 2, rtol=1e-4)


@pytest.mark.parametrize(
    "steps,edge_block,remat,per_edge",
    [
        (2, 37, RematConfig(rollout_step=True, processor_every_k=2, encoder_decoder=True), False),
        # Segments of 2 over 5 steps (two segments and a remainder step); grid
        # blocks of 37 rows do not divide the grid, so the last block overlaps.
        (5, None, RematConfig(rollout_step=True, rollout_segment=2, grid_block_size=37), False),
        (3, 64, RematConfig(rollout_segment=3, encoder_decoder=True, grid_block_size=50), False),
        # Grid nodes' edge-MLP shares per edge, with and without edge blocks.
        (2, 37, RematConfig(rollout_step=True, encoder_decoder=True), True),
        (1, None, RematConfig(), True),
    ],
)
def test_memory_knobs_do_not_change_results(steps, edge_block, remat, per_edge):
  batch = model_fakes.batch(steps=steps)
  base = _predictor()
  params = base.init_params(jax.random.PRNGKey(1), batch)
  knobs = dataclasses.replace(
      MODEL, edge_block_size=edge_block, remat=remat, grid_parts_per_edge=per_edge
  )
  results = []
  for predictor in (base, _predictor(knobs)):
    (loss, _), grads = jax.jit(jax.value_and_grad(predictor.loss, has_aux=True))(params, batch)
    rollout = jax.jit(predictor.rollout, static_argnums=3)(
        params, batch.inputs, batch.forcings, steps
    )
    results.append((loss, grads, rollout))
  assert np.isfinite(results[0][0]) and results[0][0] > 0
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
      results[0][1],
      results[1][1],
  )
  for name, value in results[0][2].items():
    assert value.shape[1] == steps
    np.testing.assert_allclose(value, results[1][2][name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "steps,remat",
    [
        # 3 steps with 2 input frames: step 2's window is rebuilt from
        # predictions alone, steps 0-1 from the first window too.
        (3, RematConfig(rollout_step=True, rollout_saves="prediction")),
        (
            4,
            RematConfig(
                rollout_step=True,
                processor_every_k=2,
                rollout_saves="prediction",
                offload_rollout=True,
                host_targets=True,
                host_inputs=True,
            ),
        ),
        (2, RematConfig(rollout_step=True, host_targets=True)),
    ],
)
def test_rollout_residual_knobs_give_the_same_loss_and_gradients(steps, remat):
  """Keeping predictions (on the device or host) instead of windows, and
  targets and inputs in host memory, change where values live, not the
  values."""
  batch = model_fakes.batch(steps=steps)
  off = remat.without_rollout_knobs()
  base = _predictor(dataclasses.replace(MODEL, remat=off))
  params = base.init_params(jax.random.PRNGKey(1), batch)
  results = []
  for predictor in (base, _predictor(dataclasses.replace(MODEL, remat=remat))):
    results.append(jax.jit(jax.value_and_grad(predictor.loss, has_aux=True))(params, batch))
  (loss, per_variable), grads = results[0]
  assert np.isfinite(loss) and loss > 0
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(a).max()),
      (loss, per_variable, grads),
      (results[1][0][0], results[1][0][1], results[1][1]),
  )


def test_offloaded_rollout_runs_inside_shard_map():
  """The trainer runs the loss inside `shard_map` (`train.sharding`), whose
  loop carries vary over the data axis: the custom-VJP rollout's carries
  must too (a one-device mesh has the same types)."""
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top

  batch = model_fakes.batch(steps=3)
  remat = RematConfig(rollout_step=True, rollout_saves="prediction", offload_rollout=True)
  predictor = _predictor(dataclasses.replace(MODEL, remat=remat))
  params = predictor.init_params(jax.random.PRNGKey(1), batch)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  local = lambda p, b: jax.lax.pmean(predictor.loss(p, b)[0], "data")
  sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data")), out_specs=P())
  loss, grads = jax.jit(jax.value_and_grad(sharded))(params, batch)
  want, want_grads = jax.jit(jax.value_and_grad(lambda p, b: predictor.loss(p, b)[0]))(
      params, batch
  )
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, want_grads
  )


def test_keeping_predictions_shrinks_what_each_rollout_step_keeps():
  """XLA (CPU) temporaries of loss+grad grow per rollout step by about one
  input window with rollout_saves="window", by one prediction with
  "prediction" (13 vs 4 float32 channels per grid node here)."""
  layout = predictor_lib.layout(model_fakes.TASK)
  growth = {}
  for saves in ("window", "prediction"):
    remat = RematConfig(rollout_step=True, rollout_saves=saves)
    predictor = _predictor(dataclasses.replace(MODEL, remat=remat))
    params = jax.eval_shape(lambda p=predictor: p.init_params(jax.random.PRNGKey(0)))
    temp = []
    for steps in (4, 8):
      batch = jax.eval_shape(lambda s=steps: model_fakes.batch(steps=s, batch_size=1))
      grad = jax.jit(jax.grad(lambda p, b, pr=predictor: pr.loss(p, b)[0]))
      temp.append(grad.lower(params, batch).compile().memory_analysis().temp_size_in_bytes)
    growth[saves] = (temp[1] - temp[0]) / 4
  num_grid = int(np.prod(_predictor().grid_shape))
  window, prediction = (4 * num_grid * len(c) for c in (layout.inputs, layout.outputs))
  assert growth["window"] >= window
  assert growth["window"] - growth["prediction"] >= window - prediction


def test_remat_config_rejects_bad_values():
  with pytest.raises(ValueError, match="remat.rollout_segment=-1"):
    RematConfig(rollout_segment=-1)
  with pytest.raises(ValueError, match="remat.grid_block_size=0"):
    RematConfig(grid_block_size=0)
  with pytest.raises(ValueError, match="remat.rollout_saves='frame'"):
    RematConfig(rollout_saves="frame")
  with pytest.raises(ValueError, match="choose one"):
    RematConfig(rollout_saves="prediction", rollout_segment=2)
  with pytest.raises(ValueError, match="offload_rollout=True needs"):
    RematConfig(offload_rollout=True)


@pytest.mark.slow  # bf16 end to end is covered by test_model_parity (folder e).
def test_bfloat16_computes_with_float32_params():
  predictor = _predictor(dataclasses.replace(MODEL, precision="bfloat16"))
  batch = model_fakes.batch(steps=1)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype("float32")}
  (loss, diagnostics), grads = jax.jit(jax.value_and_grad(predictor.loss, has_aux=True))(
      params, batch
  )
  assert loss.dtype == jnp.float32 and np.isfinite(loss)
  assert set(diagnostics) == set(model_fakes.TASK.target_variables)
  assert {x.dtype for x in jax.tree.leaves(grads)} == {np.dtype("float32")}


def test_missing_variable_is_named():
  predictor = _predictor()
  batch = model_fakes.batch(steps=1)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  inputs = dict(batch.inputs)
  del inputs["land_sea_mask"]
  with pytest.raises(KeyError, match="land_sea_mask"):
    predictor.rollout(params, inputs, batch.forcings, 1)


def test_persistence_loss_matches_direct_formula():
  predictor = _predictor()
  batch = model_fakes.batch(steps=3)
  stats = model_fakes.stats()
  total, per_variable = jax.jit(predictor.persistence_loss)(batch)
  lat_w = losses.latitude_weights(np.linspace(-90, 90, model_fakes.N_LAT))
  level_w = losses.level_weights(model_fakes.LEVELS)
  expected = {}
  for name in model_fakes.TASK.target_variables:
    target = np.asarray(batch.targets[name], np.float64)  # [B, T, (L,) H, W]
    if name in batch.inputs:  # residual from the last input frame
      scale = np.asarray(stats.diffs_stddev[name].values)
      norm = target - np.asarray(batch.inputs[name])[:, -1:]
    else:  # a target that is not an input: its mean
      scale = np.asarray(stats.stddev[name].values)
      norm = target - np.asarray(stats.mean[name].values)
    if target.ndim == 5:
      norm = norm / scale[:, None, None]
      error = (norm**2 * lat_w[:, None]).mean(axis=(-2, -1))  # [B, T, L]
      expected[name] = (error * level_w).mean()
    else:
      expected[name] = ((norm / scale) ** 2 * lat_w[:, None]).mean()
  for name, value in expected.items():
    np.testing.assert_allclose(per_variable[name], value, rtol=1e-5)
  np.testing.assert_allclose(
      total,
      sum(v * losses.PER_VARIABLE_WEIGHTS.get(n, 1.0) for n, v in expected.items()),
      rtol=1e-5,
  )


def test_split_model_names_the_rollout_knobs_it_lacks():
  """One line naming the fields and the values that run, for any knob."""
  from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.model import spatial  # pylint: disable=g-import-not-at-top

  mesh = Mesh(np.asarray(jax.devices()[:1]), ("space",))
  for knob in ("host_targets", "host_inputs"):
    model = dataclasses.replace(MODEL, remat=RematConfig(rollout_step=True, **{knob: True}))
    with pytest.raises(ValueError) as e:
      spatial.SpatialPredictor(model, model_fakes.TASK, model_fakes.stats(), mesh=mesh)
    message = str(e.value)
    assert "\n" not in message and "not supported by the spatially split model" in message
    assert "host_inputs=False" in message and "model.remat.rollout_saves" in message
