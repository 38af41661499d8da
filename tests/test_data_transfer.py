"""bfloat16 transfer: inputs and forcings halved, targets exact, the model takes it."""

import dataclasses

import jax
import ml_dtypes
import numpy as np
import pytest

import model_fakes
from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import transfer
from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig


def test_bfloat16_batches_round_inputs_and_keep_targets(tiny_data):
  half = dataclasses.replace(tiny_data, transfer_dtype="bfloat16")
  full_it = data.train_batches(tiny_data, tiny_task(), 1, 5, 0, 1)
  half_it = data.train_batches(half, tiny_task(), 1, 5, 0, 1)
  full, ours = next(full_it), next(half_it)
  full_it.close()
  half_it.close()
  for key, value in full.inputs.items():
    assert ours.inputs[key].dtype == ml_dtypes.bfloat16, key
    np.testing.assert_allclose(ours.inputs[key].astype(np.float32), value, rtol=2**-8)
  for key, value in full.targets.items():
    assert ours.targets[key].dtype == np.float32
    np.testing.assert_array_equal(ours.targets[key], value)
  evals = data.eval_batches(half, tiny_task(), 1, 1)
  assert evals[0].forcings["year_progress_sin"].dtype == ml_dtypes.bfloat16
  with pytest.raises(data.DataError, match="transfer_dtype='float16'"):
    transfer.cast(full, "float16")


def test_model_loss_takes_bfloat16_inputs():
  model = ModelConfig(
      resolution=30, mesh_size=1, latent_size=16, gnn_msg_steps=2, precision="float32"
  )
  predictor = predictor_lib.Predictor(
      model, model_fakes.TASK, model_fakes.stats(), model_fakes.graphs()
  )
  batch = model_fakes.batch(steps=1, batch_size=2)
  params = predictor.init_params(jax.random.PRNGKey(0), batch)
  full = float(predictor.loss(params, batch)[0])
  half = float(predictor.loss(params, transfer.cast(batch, "bfloat16"))[0])
  assert np.isfinite(half) and half == pytest.approx(full, rel=0.05)
