"""The ground floor: task durations, the time step and the grid, each once."""

import numpy as np
import pytest

from graphcast_fdl import grid
from graphcast_fdl import task as task_lib
from graphcast_fdl.graph import features


def test_input_frames_from_input_duration():
  task = task_lib.task_13()
  assert task_lib.input_frames(task) == 2
  assert task_lib.input_frames(task_lib.TaskConfig((), (), (), (), input_duration="1d")) == 4


@pytest.mark.parametrize("bad", ["7h", "0h", "720min", "12 hours", ""])
def test_bad_input_duration_names_the_field(bad):
  task = task_lib.TaskConfig((), (), (), (), input_duration=bad)
  with pytest.raises(ValueError, match="task.input_duration"):
    task_lib.input_frames(task)


def test_duration_steps_and_format():
  assert task_lib.duration_steps("10d", "x") == 40
  assert task_lib.duration_steps("36h", "x") == 6
  assert [task_lib.format_seconds(s) for s in (30, 600, 36_000, 864_000)] == [
      "30 s",
      "10.0 min",
      "10.0 h",
      "10.0 d",
  ]


def test_levelled_variables_cover_the_tasks():
  assert set(task_lib.ATMOSPHERIC) <= task_lib.LEVEL_VARIABLES
  assert not task_lib.has_levels("2m_temperature")


def test_grid_shape_matches_coordinates():
  for resolution, poles, shape in [
      (0.25, True, (721, 1440)),
      (1.0, False, (180, 360)),
      (6.0, True, (31, 60)),
  ]:
    lat, lon = grid.grid_coords(resolution, poles)
    assert grid.grid_shape(resolution, poles) == shape == (len(lat), len(lon))
    assert lat.dtype == np.float32 and lat[0] == (-90 if poles else -90 + resolution / 2)
  with pytest.raises(ValueError, match="resolution=0.7"):
    grid.grid_shape(0.7, True)


def test_feature_widths_are_what_the_graph_computes():
  lat, lon = np.array([0.0, 10.0], np.float32), np.array([5.0, 50.0], np.float32)
  assert features.node_features(lat, lon).shape == (2, features.NODE_FEATURES)
  edges, _ = features.edge_features(lat, lon, lat, lon, np.array([0]), np.array([1]))
  assert edges.shape == (1, features.EDGE_FEATURES)
