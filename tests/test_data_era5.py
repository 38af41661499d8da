"""ERA5 / WeatherBench-2 stores: TFDS builder, direct reading, bad-data errors."""

import dataclasses
import sys

import fsspec
import fsspec.implementations.memory

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import golden_dir
from graphcast_fdl import data
from graphcast_fdl import task as task_lib
from graphcast_fdl.data import examples
from graphcast_fdl import grid
from graphcast_fdl.data import xarray_frames
from graphcast_fdl.datasets.era5 import era5_dataset_builder as era5

TASK = dataclasses.replace(task_lib.task_13(), pressure_levels=(500, 850))
SPLITS = (("train", "2018-01-01/2018-01-03T18"), ("validation", "2018-01-04/2018-01-04T18"))


def _store(hourly=False):
  """A WB2-style dataset: latitude descending, names as the published GraphCast."""
  lat, lon = grid.grid_coords(10.0)
  times = pd.date_range("2018-01-01", "2018-01-04T18", freq="1h" if hourly else "6h")
  rng = np.random.default_rng(0)
  shape = (len(times), len(lat), len(lon))
  data_vars = {
      v: (
          ("time", "level", "latitude", "longitude"),
          rng.normal(size=(shape[0], 3) + shape[1:]).astype("f4"),
      )
      for v in task_lib.ATMOSPHERIC
  }
  data_vars.update(
      {
          v: (("time", "latitude", "longitude"), rng.normal(size=shape).astype("f4"))
          for v in task_lib.SURFACE_TARGETS + (task_lib.PRECIPITATION,)
      }
  )
  data_vars.update(
      {v: (("latitude", "longitude"), rng.random(shape[1:]).astype("f4")) for v in task_lib.STATIC}
  )
  return xr.Dataset(
      data_vars,
      coords={"time": times, "level": [500, 850, 1000], "latitude": lat[::-1], "longitude": lon},
  )


@pytest.fixture(scope="module")
def zarr_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("store") / "era5.zarr")
  _store().to_zarr(path)
  return path


def _open(path, split="all"):
  return xarray_frames.open_frames(path, split, TASK, 10.0)


def test_builder_writes_what_the_store_holds(zarr_path, tmp_path):
  config = era5.Era5Config(
      name="t", path=zarr_path, resolution=10.0, pressure_levels=(500, 850), splits=SPLITS
  )
  era5.make_builder(config, str(tmp_path)).download_and_prepare()
  cfg = data.DataConfig(
      source="era5", resolution=10.0, data_dir=str(tmp_path), path="t", global_batch_size=2
  )
  built = data.split_frames(cfg, TASK, "train")
  assert len(built) == 12 and built.lat[0] == -90.0
  store = _store().sel(level=[500, 850])
  np.testing.assert_array_equal(
      built.frame(3)["temperature"], store.temperature.isel(time=3).values[:, ::-1]
  )
  assert "toa_incident_solar_radiation" in built.frame(0)  # computed when absent
  direct = dataclasses.replace(cfg, source="zarr", path=zarr_path, train_split=SPLITS[0][1])
  a = next(data.train_batches(cfg, TASK, 2, 7, 0, 1))
  b = next(data.train_batches(direct, TASK, 2, 7, 0, 1))
  for key, value in a.targets.items():
    np.testing.assert_array_equal(value, b.targets[key])


def test_time_chunks_build_separately_and_read_as_one(zarr_path, tmp_path):
  base = era5.Era5Config(name="c", path=zarr_path, resolution=10.0, pressure_levels=(500, 850))
  chunks = era5.shard_configs(base, "2018-01-01", "2018-01-04T18", freq="2D")
  assert [c.splits[0][1] for c in chunks] == [
      "2018-01-01T00/2018-01-02T18",
      "2018-01-03T00/2018-01-04T18",
  ]
  for chunk in chunks:  # Independent: each could run on its own worker.
    era5.make_builder(chunk, str(tmp_path)).download_and_prepare()
  cfg = data.DataConfig(
      source="era5", resolution=10.0, data_dir=str(tmp_path), path=",".join(c.name for c in chunks)
  )
  joined = data.split_frames(cfg, TASK, "train")
  assert len(joined) == 16
  # A window across the chunk boundary.
  maker = examples.ExampleMaker(joined, TASK, 2)
  assert 6 in maker.starts
  np.testing.assert_array_equal(
      maker.example(6).targets["geopotential"][0], joined.frame(8)["geopotential"]
  )


def test_netcdf_and_hourly_stores(tmp_path):
  path = str(tmp_path / "era5.nc")
  _store(hourly=True).to_netcdf(path)
  frames = _open(path)
  assert len(frames) == 16  # 6-hourly times picked from an hourly store
  assert frames.frame(0)["geopotential"].shape == (2, 19, 36)


def test_reads_golden_example_layout():
  path = f"{golden_dir('e_4deg_precipout_b2')}/example_batch.nc"
  frames = xarray_frames.open_frames(path, "all", task_lib.task_13_precip_out(), 4.0)
  assert len(frames) == 6  # two batch rows, five days apart, as two segments
  assert len(examples.valid_starts(frames, 3)) == 2


def _broken(tmp_path, change):
  path = str(tmp_path / "bad.zarr")
  change(_store()).to_zarr(path)
  return path


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda ds: ds.drop_vars("specific_humidity"), r"variables \['specific_humidity'\]"),
        (lambda ds: ds.sel(level=[500, 1000]), r"pressure levels \[850\]"),
        (
            lambda ds: ds.isel(longitude=[0, 1, 2, 4] + list(range(5, 36))),
            "lon grid is not regular",
        ),
        (
            lambda ds: ds.drop_isel(time=[5]),
            "time gap: 2018-01-02T00:00:00 is followed by " "2018-01-02T12:00:00",
        ),
    ],
)
def test_bad_store_errors_on_open(tmp_path, change, message):
  with pytest.raises(data.DataError, match=message):
    _open(_broken(tmp_path, change))


def test_nan_error_names_variable_level_and_time(tmp_path):
  def add_nan(ds):
    ds.temperature.values[9, 1, 4, 4] = np.nan
    return ds

  frames = _open(_broken(tmp_path, add_nan))
  frames.frame(8)
  with pytest.raises(data.DataError, match=r"NaN in temperature level 850 at 2018-01-03T06:00:00"):
    frames.frame(9)


def test_missing_store_and_unbuilt_dataset(tmp_path):
  with pytest.raises(data.DataError, match="data store not found: /nowhere.zarr"):
    _open("/nowhere.zarr")
  cfg = data.DataConfig(source="era5", resolution=10.0, data_dir=str(tmp_path))
  with pytest.raises(data.DataError, match="era5 dataset '10deg_2lev' is not built"):
    data.prepare(cfg, TASK)
  with pytest.raises(data.DataError, match="no 6-hourly times in split 'train'"):
    _open(_broken(tmp_path, lambda ds: ds), split="train")


def test_yearly_chunks_give_train_and_validation(zarr_path, tmp_path):
  base = era5.Era5Config(name="y", path=zarr_path, resolution=10.0, pressure_levels=(500, 850))
  train = era5.shard_configs(base, "2018-01-01", "2018-01-03T18", freq="2D")
  validation = dataclasses.replace(
      base, name="y_val", splits=(("validation", "2018-01-04/2018-01-04T18"),)
  )
  for chunk in train + [validation]:
    era5.make_builder(chunk, str(tmp_path)).download_and_prepare()
  cfg = data.DataConfig(
      source="era5",
      resolution=10.0,
      data_dir=str(tmp_path),
      path=",".join(c.name for c in train + [validation]),
  )
  assert len(data.split_frames(cfg, TASK, "train")) == 12
  assert len(data.split_frames(cfg, TASK, "validation")) == 4


@pytest.mark.parametrize("hourly,zarr_format", [(False, 3), (True, 2)])
def test_tensorstore_reads_the_frames_xarray_reads(tmp_path, hourly, zarr_format):
  path = str(tmp_path / "store.zarr")
  store = _store(hourly=hourly)
  store["2m_temperature"].encoding.update(
      scale_factor=0.5, add_offset=200.0, dtype="int16", _FillValue=-32768
  )
  store.to_zarr(path, zarr_format=zarr_format)
  direct = xarray_frames.open_frames(path, "all", TASK, 10.0)
  through_xarray = xarray_frames.open_frames(path, "all", TASK, 10.0, reader="xarray")
  assert direct._arrays is not None and through_xarray._arrays is None  # pylint: disable=protected-access
  assert len(direct) == len(through_xarray) == 16
  for index in (0, 5, 15):
    a, b = direct.frame(index), through_xarray.frame(index)
    assert sorted(a) == sorted(b)
    for name in b:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  a = examples.ExampleMaker(direct, TASK, 2).batch([0, 7])
  b = examples.ExampleMaker(through_xarray, TASK, 2).batch([0, 7])
  for part in ("inputs", "targets", "forcings"):
    for name, value in getattr(b, part).items():
      np.testing.assert_array_equal(getattr(a, part)[name], value, err_msg=name)


def test_tensorstore_names_a_stored_fill_value(tmp_path):
  path = str(tmp_path / "store.zarr")
  store = _store()
  store["temperature"][3, 1, 2, 4] = -9999.0
  store["temperature"].encoding["_FillValue"] = -9999.0
  store.to_zarr(path)
  frames = xarray_frames.open_frames(path, "all", TASK, 10.0)
  frames.frame(2)
  with pytest.raises(data.DataError, match="temperature"):
    frames.frame(3)


def test_zarr_frames_read_by_tensorstore_are_a_grain_source(zarr_path):
  import grain  # pylint: disable=g-import-not-at-top

  frames = _open(zarr_path)
  assert frames._arrays is not None  # pylint: disable=protected-access
  loaded = list(grain.MapDataset.source(frames)[::5].to_iter_dataset(grain.ReadOptions(2, 2)))
  assert len(loaded) == 4
  for position, frame in zip((0, 5, 10, 15), loaded):
    for name, value in _open(zarr_path).frame(position).items():
      np.testing.assert_array_equal(frame[name], value, err_msg=name)


class _OfflineGcs(fsspec.implementations.memory.MemoryFileSystem):
  """gs:// served from memory: the path a gcsfs store takes, without network."""

  protocol = ("gs", "gcs")
  store = {}  # Its own, not memory://'s.
  pseudo_dirs = [""]

  @classmethod
  def _strip_protocol(cls, path):
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        path = path[len(prefix) :]
    return super()._strip_protocol(path)


@pytest.fixture
def offline_gcs():
  fsspec.register_implementation("gs", _OfflineGcs, clobber=True)
  try:
    yield
  finally:
    sys.modules["fsspec.registry"]._registry.pop("gs", None)  # pylint: disable=protected-access
    _OfflineGcs.store.clear()


def test_gs_store_reads_as_the_local_store(offline_gcs, zarr_path, tmp_path):
  # A gs:// WeatherBench-2 store ([gcs] extra: gcsfs) opens, fingerprints and
  # reads through fsspec; the frames, statistics and training batches equal
  # the local copy's (read through tensorstore).
  del offline_gcs
  path = "gs://wb2-offline/era5.zarr"
  _store().to_zarr(path, mode="w")
  remote, local = _open(path), _open(zarr_path)
  assert remote._arrays is None and local._arrays is not None  # pylint: disable=protected-access
  for index in (0, 9):
    for name, value in local.frame(index).items():
      np.testing.assert_array_equal(remote.frame(index)[name], value, err_msg=name)
  configs = [
      data.DataConfig(
          source="zarr",
          path=p,
          resolution=10.0,
          train_split="2018-01-01/2018-01-03T18",
          eval_split="2018-01-04/2018-01-04T18",
          data_dir=str(tmp_path / "cache"),
          global_batch_size=2,
      )
      for p in (path, zarr_path)
  ]
  stats = [data.normalization_stats(c, TASK) for c in configs]
  np.testing.assert_array_equal(stats[0].stddev.temperature, stats[1].stddev.temperature)
  batches = []
  for cfg in configs:
    iterator = data.train_batches(cfg, TASK, 1, 3, 0, 1)
    batches.append(next(iterator))
    iterator.close()
  for name, value in batches[1].inputs.items():
    np.testing.assert_array_equal(batches[0].inputs[name], value, err_msg=name)


def test_gs_store_without_gcsfs_names_the_extra():
  try:
    import gcsfs  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401

    pytest.skip("gcsfs is installed")
  except ImportError:
    pass
  with pytest.raises(data.DataError, match=r"pip install 'graphcast_fdl\[gcs\]'"):
    xarray_frames.open_frames("gs://weatherbench2/era5.zarr", "all", TASK, 10.0)
