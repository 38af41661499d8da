"""The default log holds what a user reads; --verbosity=1 shows the rest."""

import logging
import os

from absl import logging as absl_logging
import pytest

from graphcast_fdl import system
from graphcast_fdl.cli import logs


def _record(path, msg, args=(), level=logging.INFO):
  return logging.LogRecord("absl", level, path, 1, msg, args, None)


@pytest.fixture
def default_verbosity():
  before = absl_logging.get_verbosity()
  absl_logging.set_verbosity(0)
  yield
  absl_logging.set_verbosity(before)


def _shown(record):
  return logs.UserLogFilter().filter(record)


def test_library_info_held_back(default_verbosity):
  site = os.path.join(os.sep, "venv", "site-packages")
  for path in (
      "jax/_src/xla_bridge.py",
      "orbax/checkpoint/manager.py",
      "tensorflow_datasets/core/dataset_info.py",
      "clu/parameter_overview.py",
  ):
    assert not _shown(_record(os.path.join(site, path), "noise"))
  assert _shown(_record(os.path.join(site, "orbax/x.py"), "bad", level=logging.WARNING))
  assert _shown(
      _record(
          os.path.join(site, "tensorflow_datasets/core/b.py"),
          "Generating dataset synthetic_weather (/root/...)",
      )
  )
  assert _shown(_record("/repo/graphcast_fdl/train/trainer.py", "Phase x"))


def test_metric_lines_cut_to_losses(default_verbosity):
  path = "/venv/clu/metric_writers/logging_writer.py"
  record = _record(
      path,
      "[%d]%s %s",
      (100, "", "train/grad_norm=4.5, " "train/loss=6.0, train/loss/msl=1.0, " "eval/loss=2.0"),
  )
  assert _shown(record)
  assert record.getMessage() == "[100] train/loss=6.0, eval/loss=2.0"
  assert not _shown(_record(path, "[%d]%s %s", (100, "", "uptime=96.6")))
  assert _shown(_record(path, "[Hyperparameters]%s %s", ("", {"n": 3})))


def test_verbosity_shows_everything(default_verbosity):
  absl_logging.set_verbosity(1)
  assert _shown(_record("/venv/jax/_src/xla_bridge.py", "noise"))


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], False),
        (["--verbosity=1"], True),
        (["-v", "2"], True),
        (["--v=0"], False),
        (["--config=config:demo", "-v=1"], True),
    ],
)
def test_verbose_from_argv(argv, expected):
  assert logs.verbose(argv) is expected


def test_cpp_notices_dropped_other_stderr_kept(capfd):
  with system.stderr_captured(keep=logs._not_a_tf_notice):  # pylint: disable=protected-access
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. ...\n")
    os.write(2, b"E0000 something that matters\n")
  assert capfd.readouterr().err == "E0000 something that matters\n"
