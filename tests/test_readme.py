"""Every `.venv/bin/graphcast_fdl` command the README shows runs as written.

The quick start makes `.venv` in the checkout and installs the package into
it, so the commands after it name the installed script by that path (a shell
where the venv was never activated has no `absl` for a bare `python`).
"""

import os
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

# Commands that train, or read what training wrote, run in their own
# end-to-end tests (test_trainer_real, test_evaluate_command, test_sweep).
_PROGRAM = ".venv/bin/graphcast_fdl"
# Commands on "$STORE" (the WeatherBench-2 bucket) need the network; the
# same settings run offline through the `print_config` line beside them.
_COVERED_ELSEWHERE = (
    f"{_PROGRAM} train ",
    f"{_PROGRAM} evaluate ",
    f"{_PROGRAM} forecast ",
    "--mode=run",
    "$STORE",
)
_SHARED = os.path.join(os.path.dirname(REPO), "shared")


def _readme_commands():
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  commands = []
  for line in text.splitlines():
    expect_error = line.startswith("$ ")
    line = line[2:] if expect_error else line
    if line.startswith(_PROGRAM) and not any(c in line for c in _COVERED_ELSEWHERE):
      commands.append((line, expect_error))
  return commands


def test_readme_shows_commands():
  assert len(_readme_commands()) >= 4


def test_readme_runs_no_bare_python():
  """No command outside the quick start relies on an activated venv."""
  with open(os.path.join(REPO, "README.md")) as f:
    lines = f.read().splitlines()
  assert not [
      line
      for line in lines
      if line.startswith(("python -m", "$ python -m", "python3 -m graphcast_fdl"))
  ]


@pytest.mark.parametrize("command,expect_error", _readme_commands())
def test_readme_command_runs(command, expect_error, tmp_path):
  if "../shared/" in command and not os.path.isdir(_SHARED):
    pytest.skip(f"golden files not found at {_SHARED}")
  argv = shlex.split(command)
  # The same script when the tests run from the quick start's venv; CI may
  # keep its venv elsewhere, so take the one beside the running interpreter.
  argv[0] = os.path.join(os.path.dirname(sys.executable), "graphcast_fdl")
  result = subprocess.run(
      argv,
      capture_output=True,
      text=True,
      timeout=300,
      cwd=REPO,
      env={**os.environ, "HOME": str(tmp_path)},
  )
  if "--workdir=/tmp/" in command:
    workdir = command.split("--workdir=")[1].split()[0]
    assert os.path.isdir(workdir)
  if expect_error:
    assert result.returncode == 2 and result.stderr.startswith("error: ")
  else:
    assert result.returncode == 0, result.stderr[-2000:]
