"""The synthetic_weather builder: layout, any grid/levels, learnability."""

import json
import os

import numpy as np

from data_fixtures import LEVELS, tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl import grid
from graphcast_fdl import task as task_lib
from graphcast_fdl.datasets.synthetic_weather import simulation
from graphcast_fdl.datasets.synthetic_weather import synthetic_weather_dataset_builder as sw


def test_build_has_every_graphcast_variable(tiny_data):
  frames = data.split_frames(tiny_data, tiny_task(), "train")
  assert len(frames) == 16 and frames.datetimes[1] - frames.datetimes[0] == np.timedelta64(6, "h")
  frame = frames.frame(5)
  for name in task_lib.ATMOSPHERIC:
    assert frame[name].shape == (3, 31, 60)
  for name in task_lib.SURFACE_TARGETS + (task_lib.PRECIPITATION,):
    assert frame[name].shape == (31, 60)
  assert set(frames.statics) == set(task_lib.STATIC)
  assert all(np.isfinite(v).all() for v in frame.values())
  assert (frame["total_precipitation_6hr"] >= 0).all()
  assert (frame["specific_humidity"] >= 0).all()
  validation = data.split_frames(tiny_data, tiny_task(), "validation")
  assert validation.datetimes[0] == frames.datetimes[-1] + np.timedelta64(6, "h")


def test_surface_fields_do_not_depend_on_the_level_set():
  lat, lon = grid.grid_coords(10.0, include_poles=False)
  a = list(simulation.simulate(lat, lon, (1000,), "2020-06-01", 3, seed=1))
  b = list(simulation.simulate(lat, lon, (1, 50, 500, 1000), "2020-06-01", 3, seed=1))
  for (_, fa), (_, fb) in zip(a, b):
    np.testing.assert_array_equal(fa["2m_temperature"], fb["2m_temperature"])
    np.testing.assert_array_equal(fa["temperature"][0], fb["temperature"][-1])
  assert np.isfinite(b[-1][1]["geopotential"]).all()


def _stencil_regression_vs_persistence(x):
  """RMSE of a per-row linear 5-point stencil on 2 frames vs persistence."""
  steps, num_lat, _ = x.shape
  train = int(steps * 0.7)
  model_err, persist_err = [], []
  for row in range(num_lat):
    features = [
        np.roll(x[1 - lag : steps - 1 - lag, row], s, axis=-1)
        for lag in (0, 1)
        for s in (-2, -1, 0, 1, 2)
    ]
    features = np.stack(features + [np.ones_like(features[0])], -1)[: steps - 2]
    target = x[2:, row]
    w, *_ = np.linalg.lstsq(
        features[:train].reshape(-1, features.shape[-1]), target[:train].reshape(-1), rcond=None
    )
    model_err.append(np.mean((features[train:] @ w - target[train:]) ** 2))
    persist_err.append(np.mean((x[1:-1, row][train:] - target[train:]) ** 2))
  return np.sqrt(np.mean(model_err)), np.sqrt(np.mean(persist_err))


def test_evolution_is_learnable():
  # Even a linear model of two frames beats persistence clearly.
  lat, lon = grid.grid_coords(6.0)
  frames = [f for _, f in simulation.simulate(lat, lon, (500,), "2016-01-01", 160)]
  for name, level in (
      ("geopotential", 0),
      ("u_component_of_wind", 0),
      ("10m_v_component_of_wind", None),
  ):
    x = np.stack([f[name] if level is None else f[name][level] for f in frames])
    model, persistence = _stencil_regression_vs_persistence(x.astype(np.float64))
    assert model < 0.8 * persistence, (name, model, persistence)


def test_metadata_describes_grid_and_splits(tiny_data):
  builder = sw.builder_for(tiny_data, tiny_task())
  meta = json.load(open(os.path.join(builder.data_dir, "metadata.json")))
  assert meta["levels"] == list(LEVELS)
  assert meta["splits"]["train"]["num_frames"] == 16
  assert len(meta["lat"]) == 31 and meta["lat"][0] == -90.0
