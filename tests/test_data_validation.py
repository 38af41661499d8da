"""Bad data as a new user would bring it: fixed on the way in, or one clear line."""

import numpy as np
import pytest
import xarray as xr

from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import fingerprint
from graphcast_fdl.data import pipeline
from graphcast_fdl.data import preflight
from graphcast_fdl.data import validation
from graphcast_fdl.data import xarray_frames
from test_data_era5 import TASK, _store


def _open(ds, tmp_path, name="bad.zarr", split="all"):
  path = str(tmp_path / name)
  ds.to_zarr(path, mode="w")
  return xarray_frames.open_frames(path, split, TASK, 10.0)


def test_descending_longitudes_are_sorted_not_mirrored(tmp_path):
  good = _open(_store(), tmp_path, "good.zarr")
  flipped = _open(_store().isel(longitude=slice(None, None, -1)), tmp_path)
  np.testing.assert_array_equal(flipped.lon, good.lon)
  np.testing.assert_array_equal(flipped.frame(3)["temperature"], good.frame(3)["temperature"])


def test_longitudes_from_minus_180_are_wrapped(tmp_path):
  good = _open(_store(), tmp_path, "good.zarr")
  ds = _store()
  ds = ds.roll(longitude=18, roll_coords=True)
  ds = ds.assign_coords(longitude=((ds.longitude.values + 180) % 360) - 180)
  np.testing.assert_array_equal(
      _open(ds, tmp_path).frame(0)["geopotential"], good.frame(0)["geopotential"]
  )


def test_cell_centre_longitudes_are_rejected(tmp_path):
  ds = _store()
  ds = ds.assign_coords(longitude=ds.longitude.values + 5)  # 5..355
  with pytest.raises(
      data.DataError, match=r"lon coordinate runs 5\.\.355 deg: the 10 deg " r"grid needs 0\.\.350"
  ):
    _open(ds, tmp_path)


def test_pressure_level_dimension_is_accepted(tmp_path):
  good = _open(_store(), tmp_path, "good.zarr")
  renamed = _open(_store().rename({"level": "pressure_level"}), tmp_path)
  np.testing.assert_array_equal(renamed.frame(2)["temperature"], good.frame(2)["temperature"])


def test_units_are_converted_or_rejected(tmp_path):
  good = _open(_store(), tmp_path, "good.zarr")
  ds = _store()
  ds["temperature"] = (ds.temperature - 273.15).assign_attrs(units="degC")
  ds["geopotential"] = (ds.geopotential / validation.G).assign_attrs(units="m")
  ds["mean_sea_level_pressure"] = (ds.mean_sea_level_pressure / 100).assign_attrs(units="hPa")
  ds["2m_temperature"] = ds["2m_temperature"].assign_attrs(units="K")
  converted = _open(ds, tmp_path).frame(4)
  for name in ("temperature", "geopotential", "mean_sea_level_pressure", "2m_temperature"):
    np.testing.assert_allclose(converted[name], good.frame(4)[name], rtol=1e-5, atol=1e-4)
  ds["temperature"] = ds.temperature.assign_attrs(units="degF")
  with pytest.raises(
      data.DataError, match=r"temperature in .*bad2.zarr has units 'degF': " r"expected 'K'"
  ):
    _open(ds, tmp_path, "bad2.zarr")


@pytest.mark.parametrize(
    "value,kind",
    [
        (9.969209968386869e36, r"fill value 9\.97e\+36"),
        (np.inf, "Inf"),
        (-np.inf, "Inf"),
        (np.nan, "NaN"),
    ],
)
def test_bad_values_are_named(tmp_path, value, kind):
  ds = _store()
  ds.temperature.values[9, 1, 4, 4] = value
  frames = _open(ds, tmp_path)
  frames.frame(8)
  with pytest.raises(
      data.DataError, match=kind + r".* in temperature level 850 at 2018-01-03T06:00:00"
  ):
    frames.frame(9)


@pytest.mark.parametrize(
    "times,message",
    [
        ([0, 1, 1, 2], r"duplicate time 2018-01-01T06:00:00 \(positions 1 and 2\)"),
        (
            [0, 1, 3, 2],
            r"times go backwards: 2018-01-01T18:00:00 is followed by " r"2018-01-01T12:00:00",
        ),
        ([3, 2, 1, 0], r"times go backwards: 2018-01-01T18:00:00"),
        ([0, 1, 3, 4], r"time gap: 2018-01-01T06:00:00 is followed by 2018-01-01T18:00:00"),
    ],
)
def test_times_out_of_order_are_named(tmp_path, times, message):
  ds = _store().isel(time=times)
  with pytest.raises(data.DataError, match=message):
    _open(ds, tmp_path)


def test_constant_variable_is_named_by_the_statistics(tmp_path):
  ds = _store()
  ds["specific_humidity"] = xr.zeros_like(ds.specific_humidity)
  frames = _open(ds, tmp_path)
  with pytest.raises(
      data.DataError, match=r"specific_humidity level 500 is constant " r"\(stddev 0\)"
  ):
    data.compute_stats(frames)
  ds = _store()
  ds["2m_temperature"][:] = ds["2m_temperature"].isel(time=0)  # Varies in space only.
  with pytest.raises(data.DataError, match=r"2m_temperature is constant in time"):
    data.compute_stats(_open(ds, tmp_path, "bad2.zarr"))


def test_zarr_statistics_follow_the_store_content(tmp_path):
  path = str(tmp_path / "era5.zarr")
  cfg = data.DataConfig(
      source="zarr", path=path, resolution=10.0, data_dir=str(tmp_path / "cache"), train_split="all"
  )
  _store().to_zarr(path)
  first = data.normalization_stats(cfg, TASK)
  again = data.normalization_stats(cfg, TASK)
  np.testing.assert_array_equal(again.mean.temperature, first.mean.temperature)
  replaced = _store()
  replaced["temperature"] = replaced.temperature + 10.0
  replaced.to_zarr(path, mode="w")  # Same path, new content.
  pipeline._frames.cache_clear()  # pylint: disable=protected-access
  second = data.normalization_stats(cfg, TASK)
  np.testing.assert_allclose(second.mean.temperature, first.mean.temperature + 10.0, rtol=1e-5)


def test_fingerprint_of_a_store_behind_fsspec():
  """gs:// stores go through fsspec (gcsfs); the memory filesystem needs no network."""
  path = "memory://wb2_test/era5.zarr"
  _store().to_zarr(path, mode="w")
  frames = xarray_frames.open_frames(path, "all", TASK, 10.0)
  np.testing.assert_array_equal(
      frames.frame(1)["temperature"], _store().sel(level=[500, 850]).temperature.values[1, :, ::-1]
  )
  before = fingerprint.store_fingerprint(path)
  assert fingerprint.store_fingerprint(path) == before
  changed = _store()
  changed["temperature"] = changed.temperature * 2
  changed.to_zarr(path, mode="w")
  assert fingerprint.store_fingerprint(path) != before


def _eval_split_store_config(path: str) -> data.DataConfig:
  """`_store()` written to `path`, its last day the eval split."""
  return data.DataConfig(
      source="zarr",
      path=path,
      resolution=10.0,
      train_split="2018-01-01/2018-01-03T18",
      eval_split="2018-01-04/2018-01-04T18",
      global_batch_size=2,
  )


def test_nan_in_eval_split_found_before_training(tiny_data, tmp_path):
  task = tiny_task()
  indices = preflight.eval_frame_indices(tiny_data, task, 1, 2)
  frames = data.split_frames(tiny_data, task, tiny_data.eval_split)
  assert indices.min() >= 0 and indices.max() < len(frames)
  preflight.check_eval_split(tiny_data, task, 1, 2)  # Clean data passes.
  # The same windows read from a zarr copy of the eval split with one NaN.
  ds = _store()
  cfg = _eval_split_store_config(str(tmp_path / "e.zarr"))
  ds.to_zarr(cfg.path)
  read = preflight.eval_frame_indices(cfg, TASK, 1, 1)
  eval_start = 12  # 2018-01-04T00 in the store.
  ds.temperature.values[eval_start + read[-1], 0, 3, 3] = np.nan
  ds.to_zarr(cfg.path, mode="w")
  pipeline._frames.cache_clear()  # pylint: disable=protected-access
  with pytest.raises(data.DataError, match=r"NaN in temperature level 500 at 2018-01-04"):
    preflight.check_eval_split(cfg, TASK, 1, 1)


def test_constant_variable_in_a_given_stats_dir_is_named(tmp_path):
  # Statistics brought from elsewhere (`stats_dir`) are checked on loading too.
  path = str(tmp_path / "era5.zarr")
  _store().to_zarr(path)
  cfg = data.DataConfig(source="zarr", path=path, resolution=10.0, train_split="all")
  stats = data.compute_stats(data.split_frames(cfg, TASK, "all"))
  stats.diffs_stddev["mean_sea_level_pressure"][...] = 0.0
  stats.save(str(tmp_path / "given"))
  with pytest.raises(
      data.DataError,
      match=r"mean_sea_level_pressure is constant in time \(diffs_stddev 0 in .*given\)",
  ):
    data.normalization_stats(cfg, TASK, stats_dir=str(tmp_path / "given"))


def test_train_command_stops_on_a_nan_in_the_eval_split(tmp_path):
  # `train` reads the evaluation windows before the first step (cli.train
  # calls check_eval_data before building the trainer): one line.
  from graphcast_fdl import experiments  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli import train as train_command  # pylint: disable=g-import-not-at-top
  from graphcast_fdl.cli.errors import UsageError  # pylint: disable=g-import-not-at-top

  from graphcast_fdl.experiments import convert  # pylint: disable=g-import-not-at-top
  import fiddle as fdl  # pylint: disable=g-import-not-at-top

  ds = _store()
  ds.temperature.values[13, 1, 2, 2] = np.inf  # 2018-01-04T06, in the eval split.
  ds.to_zarr(str(tmp_path / "e.zarr"))
  cfg = experiments.demo()
  experiments.resolution(cfg, degrees=10.0)
  cfg.data = convert.as_config(_eval_split_store_config(str(tmp_path / "e.zarr")))
  cfg.task = convert.as_config(TASK)
  cfg.eval.rollout_steps, cfg.eval.num_batches = 1, 2
  experiment = fdl.build(cfg)
  with pytest.raises(UsageError, match=r"Inf in temperature level 850 at 2018-01-04T06"):
    train_command.check_eval_data(experiment)
