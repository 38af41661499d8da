"""`graphcast_fdl COMMAND --help` lists that command's own flags and exits 0."""

import subprocess
import sys

import pytest

from conftest import REPO


def _run(*args):
  return subprocess.run(
      [sys.executable, "-m", "graphcast_fdl.main", *args],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
  )


def _flag_lines(text):
  return [line.split()[0] for line in text.splitlines() if line.startswith("  --")]


@pytest.mark.parametrize("help_flag", ["--help", "--helpshort", "-h"])
def test_estimate_help_lists_its_flags(help_flag):
  result = _run("estimate", help_flag)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert out.startswith("usage: graphcast_fdl estimate [--flags]\n")
  assert _flag_lines(out) == [
      "--config",
      "--workdir",
      "--hardware=tpu_v4",
      "--format=text",
      "--[no]xla",
      "--png",
      "--[no]fit",
      "--memory_gib",
      "--[no]debug",
  ]
  assert "  --hardware=tpu_v4  One of: tpu_v4, tpu_v5e, tpu_v5p, tpu_v6e," in out
  # One line a flag: no continuation lines without a flag name.
  flags_part = out.split("\nflags:\n")[1].split("\n\n")[0]
  assert all(line.startswith("  --") for line in flags_part.splitlines())
  assert "run_with_pdb" not in out and "main.py" not in out


def test_train_help_and_helpfull():
  short = _run("train", "--help")
  assert short.returncode == 0
  assert {"--config", "--workdir", "--distributed=auto", "--coordinator_address"} <= set(
      _flag_lines(short.stdout)
  )
  full = _run("train", "--helpfull")
  assert full.returncode == 0
  assert "run_with_pdb" in full.stdout and "--distributed" in full.stdout


def test_sweep_help_lists_its_config_flag():
  result = _run("sweep", "--help")
  assert result.returncode == 0
  flags = _flag_lines(result.stdout)
  assert flags[:2] == ["--config", "--workdir"] and "--remote_workdir" in flags


def test_top_level_help_names_commands():
  result = _run("--help")
  assert result.returncode == 0
  assert "estimate" in result.stdout and "COMMAND --help" in result.stdout
