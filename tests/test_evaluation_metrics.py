"""Scores against values worked out by hand on 3x2 and 2x2 grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from graphcast_fdl.evaluation import metrics
from graphcast_fdl.model import losses

R2 = np.sqrt(2.0)
# Rows at -90, 0, 90: cell bounds -90, -45, 45, 90 deg, areas in sin units
# 1 - sqrt(2)/2, sqrt(2), 1 - sqrt(2)/2 (sum 2), divided by their mean 2/3.
POLE_LAT = np.array([-90.0, 0.0, 90.0])
POLE_W = 1.5 * np.array([1 - R2 / 2, R2, 1 - R2 / 2])


def test_latitude_weights_pole_rows_are_half_caps():
  np.testing.assert_allclose(metrics.latitude_weights(POLE_LAT), POLE_W)
  np.testing.assert_allclose(metrics.latitude_weights(POLE_LAT[::-1]), POLE_W[::-1])


def test_latitude_weights_without_poles():
  # Rows at -60, 0, 60: bounds -90, -30, 30, 90: areas 0.5, 1, 0.5.
  np.testing.assert_allclose(metrics.latitude_weights([-60, 0, 60]), [0.75, 1.5, 0.75])
  np.testing.assert_allclose(metrics.latitude_weights([-45, 45]), [1.0, 1.0])


@pytest.mark.parametrize("lat", [np.linspace(-90, 90, 46), np.arange(-88, 90, 4.0)])
def test_latitude_weights_equal_the_loss_weights(lat):
  np.testing.assert_allclose(
      metrics.latitude_weights(lat), losses.latitude_weights(lat), rtol=1e-12
  )


def test_latitude_weights_reject_bad_rows():
  with pytest.raises(ValueError, match="distinct"):
    metrics.latitude_weights([0, 0, 10])
  with pytest.raises(ValueError, match="outside"):
    metrics.latitude_weights([-95, 0, 95])


def test_error_only_on_a_pole_row():
  truth = np.zeros((1, 3, 2))
  forecast = truth.copy()
  forecast[0, 2, :] = 2.0  # north pole row
  # mse = w_pole * 4 * 2 cells / 6 cells.
  expected = POLE_W[2] * 4 * 2 / 6
  np.testing.assert_allclose(metrics.mse(forecast, truth, POLE_LAT), [expected])
  np.testing.assert_allclose(metrics.rmse(forecast, truth, POLE_LAT), np.sqrt(expected))
  np.testing.assert_allclose(metrics.bias(forecast, truth, POLE_LAT), POLE_W[2] * 2 * 2 / 6)


def test_rmse_square_root_after_versus_before_time_mean():
  truth = np.zeros((2, 3, 2))
  forecast = np.stack([np.full((3, 2), 3.0), np.full((3, 2), -4.0)])
  np.testing.assert_allclose(metrics.mse(forecast, truth, POLE_LAT), [9.0, 16.0])
  np.testing.assert_allclose(metrics.rmse(forecast, truth, POLE_LAT), np.sqrt(12.5))
  np.testing.assert_allclose(metrics.rmse_per_forecast(forecast, truth, POLE_LAT), 3.5)
  np.testing.assert_allclose(metrics.bias(forecast, truth, POLE_LAT), -0.5)


def test_time_axis_and_extra_axes():
  rng = np.random.default_rng(0)
  forecast = rng.normal(size=(4, 5, 3, 2))  # [lead, init, lat, lon]
  truth = rng.normal(size=(4, 5, 3, 2))
  by_lead = metrics.rmse(forecast, truth, POLE_LAT, time_axis=1)
  assert by_lead.shape == (4,)
  np.testing.assert_allclose(by_lead[2], metrics.rmse(forecast[2], truth[2], POLE_LAT))


def test_acc_hand_values():
  lat = [-60.0, 0.0, 60.0]  # weights 0.75, 1.5, 0.75
  clim = np.full((3, 1), 10.0)
  truth = clim + np.array([[1.0], [0.0], [-1.0]])
  assert metrics.acc(truth[None] * 1, truth[None], clim, lat) == pytest.approx(1.0)
  forecast = clim + 3 * (truth - clim)  # scaled anomaly: still perfectly correlated
  assert metrics.acc(forecast[None], truth[None], clim, lat) == pytest.approx(1.0)
  opposite = clim - (truth - clim)
  assert metrics.acc(opposite[None], truth[None], clim, lat) == pytest.approx(-1.0)
  # f' = (1, 1, 0), o' = (1, 0, -1): <f'o'> = 0.75/3, <f'^2> = 2.25/3,
  # <o'^2> = 1.5/3 -> 0.75 / sqrt(2.25 * 1.5) = 1 / sqrt(6).
  forecast = clim + np.array([[1.0], [1.0], [0.0]])
  expected = 1 / np.sqrt(6.0)
  assert metrics.acc(forecast[None], truth[None], clim, lat) == pytest.approx(expected)
  # Two initial times: the mean of the per-forecast values.
  both = metrics.acc(np.stack([forecast, truth]), np.stack([truth, truth]), clim, lat)
  assert both == pytest.approx((expected + 1) / 2)


def test_jax_arrays_and_jit_give_the_numpy_values():
  rng = np.random.default_rng(1)
  forecast, truth, clim = (rng.normal(size=(3, 3, 4)) for _ in range(3))
  for fn, args in (
      (metrics.rmse, ()),
      (metrics.rmse_per_forecast, ()),
      (metrics.bias, ()),
      (metrics.acc, (clim,)),
  ):
    expected = fn(forecast, truth, *args, POLE_LAT)
    jitted = jax.jit(lambda f, o, *a, fn=fn: fn(f, o, *a, POLE_LAT))
    got = jitted(jnp.asarray(forecast), jnp.asarray(truth), *map(jnp.asarray, args))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def test_headline_metrics_keys_and_values():
  levels = (500, 850)
  zeros_atm = np.zeros((2, 2, 2, 3, 2))  # [B, T, level, lat, lon]
  zeros_sfc = np.zeros((2, 2, 3, 2))
  targets = {"geopotential": zeros_atm, "2m_temperature": zeros_sfc, "specific_humidity": zeros_atm}
  z = zeros_atm.copy()
  z[:, 1, 0] = 2.0  # error 2 at z500, second lead time only
  t = zeros_sfc.copy()
  t[0, 0] = 1.0  # first forecast of t2m off by 1 at 6 h
  predictions = {"geopotential": z, "2m_temperature": t, "specific_humidity": zeros_atm}
  out = metrics.headline_metrics(predictions, targets, POLE_LAT, levels)
  assert sorted(out) == sorted(
      f"{m}/{v}/{h}" for m in ("rmse", "bias") for v in ("z500", "t2m") for h in ("6h", "12h")
  )
  assert out["rmse/z500/6h"] == 0.0
  assert out["rmse/z500/12h"] == pytest.approx(2.0)
  assert out["bias/z500/12h"] == pytest.approx(2.0)
  assert out["rmse/t2m/6h"] == pytest.approx(0.5)  # per forecast: (1 + 0) / 2
  # Without levels only surface fields are scored.
  assert set(metrics.headline_metrics(predictions, targets, POLE_LAT)) == {
      "rmse/t2m/6h",
      "rmse/t2m/12h",
      "bias/t2m/6h",
      "bias/t2m/12h",
  }
