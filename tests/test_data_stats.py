"""Streaming normalisation statistics against a direct numpy computation."""

import os

import numpy as np
import pytest

from conftest import golden_dir
from data_fixtures import tiny_data, tiny_task  # pylint: disable=unused-import  # noqa: F401
from graphcast_fdl import data
from graphcast_fdl.data import forcings
from graphcast_fdl.model.normalization_stats import NormalizationStats


def test_stats_match_numpy(tiny_data):
  frames = data.split_frames(tiny_data, tiny_task(), "train")
  stats = data.compute_stats(frames)
  temps = np.stack([frames.frame(i)["temperature"] for i in range(len(frames))]).astype(np.float64)
  np.testing.assert_allclose(stats.mean.temperature, temps.mean(axis=(0, 2, 3)), rtol=1e-6)
  np.testing.assert_allclose(stats.stddev.temperature, temps.std(axis=(0, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(
      stats.diffs_stddev.temperature, np.diff(temps, axis=0).std(axis=(0, 2, 3)), rtol=1e-5
  )
  t2m = np.stack([frames.frame(i)["2m_temperature"] for i in range(len(frames))])
  assert float(stats.diffs_stddev["2m_temperature"]) == pytest.approx(
      np.diff(t2m.astype(np.float64), axis=0).std(), rel=1e-5
  )
  year = forcings.year_progress(frames.datetimes)
  assert float(stats.mean.year_progress) == pytest.approx(year.mean(), rel=1e-5)
  lsm = frames.statics["land_sea_mask"]
  assert float(stats.stddev.land_sea_mask) == pytest.approx(lsm.std(), rel=1e-5)


def test_stats_layout_matches_golden(tiny_data, tmp_path):
  stats = data.compute_stats(data.split_frames(tiny_data, tiny_task(), "train"))
  stats.save(str(tmp_path))
  golden = NormalizationStats.load(os.path.join(golden_dir("a_4deg_m3_l32"), "stats"))
  for field in ("mean", "stddev", "diffs_stddev"):
    ours, ref = getattr(stats, field), getattr(golden, field)
    assert set(ours.data_vars) == set(ref.data_vars)
    for name in ref.data_vars:
      assert ours[name].dims == ref[name].dims and ours[name].dtype == ref[name].dtype, name
    assert ours.level.dtype == ref.level.dtype


def test_strided_stats_are_close(tiny_data):
  frames = data.split_frames(tiny_data, tiny_task(), "train")
  full, strided = data.compute_stats(frames), data.compute_stats(frames, stride=3)
  np.testing.assert_allclose(strided.mean.geopotential, full.mean.geopotential, rtol=0.01)
  np.testing.assert_allclose(
      strided.diffs_stddev.geopotential, full.diffs_stddev.geopotential, rtol=0.3
  )


def test_normalization_stats_cached_and_loaded(tiny_data, tmp_path):
  stats = data.normalization_stats(tiny_data, tiny_task())
  assert stats.mean.level.values.tolist() == [500, 850, 1000]
  stats.save(str(tmp_path))
  loaded = data.normalization_stats(tiny_data, tiny_task(), str(tmp_path))
  np.testing.assert_array_equal(loaded.stddev.geopotential, stats.stddev.geopotential)
  with pytest.raises(FileNotFoundError, match="mean_by_level"):
    data.normalization_stats(tiny_data, tiny_task(), str(tmp_path / "nope"))
