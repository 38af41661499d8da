"""Shared test fixtures: locating the golden files, parsing `--config` flags,
running device workers."""

import json
import os
import subprocess
import sys

from absl import flags
import pytest

# Registers the TFDS builders' data sources (as the commands do).
from graphcast_fdl import datasets  # noqa: F401  (registers the data sources)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(os.path.dirname(REPO), "shared", "refdata", "graphcast_golden")


def golden_dir(name: str) -> str:
  """Path of a golden folder; skips the test where the shared data is absent."""
  path = os.path.join(GOLDEN, name)
  if not os.path.isdir(path):
    pytest.skip(
        f"golden files not found at {path} (they live in ../shared "
        "beside the checkout, not in the repo)"
    )
  return path


@pytest.fixture
def parse_flags():
  """Parses command-line flags into the global FLAGS, reset afterwards."""
  from graphcast_fdl.cli import config_flags  # noqa: F401  (defines --config)

  def parse(*args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", *args])

  yield parse
  flags.FLAGS.unparse_flags()


def run_device_worker(script: str, timeout_s: int) -> dict:
  """Runs tests/`script` in a fresh process and returns its last stdout line
  as JSON. The worker sets its own device count (XLA_FLAGS is dropped so a
  caller's setting cannot leak in); `timeout -s KILL` ends a hung run."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
  result = subprocess.run(
      ["timeout", "-s", "KILL", str(timeout_s), sys.executable, path],
      capture_output=True,
      text=True,
      env=env,
      check=False,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])
