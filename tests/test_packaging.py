"""The wheel built from pyproject.toml installs a package whose commands run.

An editable install hides a package missing from the wheel, so this builds
the wheel from a copy of the checkout (no stale `build/`), installs it with
`--no-deps` into a fresh virtual environment and runs the installed
`graphcast_fdl` from a folder outside the repo. The dependencies come from
the running interpreter's site-packages (a path entry, so its editable
finder for this checkout is not loaded), not from a 2.8 GB reinstall.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import REPO


def _tracked_files() -> list[str]:
  listed = subprocess.run(
      ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=True,
  ).stdout
  return [f for f in listed.split("\0") if f and os.path.isfile(os.path.join(REPO, f))]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(bin folder of a fresh venv with the wheel installed, wheel path)."""
  if (
      shutil.which("git") is None
      or not os.path.isdir(os.path.join(REPO, ".git"))
      and not os.path.isfile(os.path.join(REPO, ".git"))
  ):
    pytest.skip("needs a git checkout to know which files are sources")
  root = tmp_path_factory.mktemp("packaging")
  source = root / "source"
  for name in _tracked_files():
    os.makedirs(source / os.path.dirname(name), exist_ok=True)
    shutil.copy2(os.path.join(REPO, name), source / name)
  pip = [sys.executable, "-m", "pip"]
  subprocess.run(
      [
          *pip,
          "wheel",
          "--no-deps",
          "--no-build-isolation",
          "-q",
          "-w",
          str(root / "dist"),
          str(source),
      ],
      check=True,
      capture_output=True,
  )
  (wheel,) = (root / "dist").iterdir()
  venv = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  (site,) = (venv / "lib").glob("python*/site-packages")
  (site / "running_deps.pth").write_text(sysconfig.get_paths()["purelib"])
  subprocess.run(
      [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", str(wheel)],
      check=True,
      capture_output=True,
  )
  return venv / "bin", wheel


def _run(bin_dir, *args, cwd):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return subprocess.run(
      [str(bin_dir / "graphcast_fdl"), *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )


def test_wheel_holds_every_package(installed):
  _, wheel = installed
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
  for root in ("graphcast_fdl", "experiments", "datasets"):
    for folder, _, files in os.walk(os.path.join(REPO, root)):
      if "__init__.py" in files:
        package = os.path.relpath(folder, REPO)
        if root != "graphcast_fdl":
          package = os.path.join("graphcast_fdl", package)
        assert f"{package}/__init__.py" in names
  assert not any(n.split("/")[0] in ("datasets", "experiments", "tests") for n in names)
  assert "graphcast_fdl/experiments/flagfiles/graphcast.flags" in names


def test_installed_command_runs_outside_the_repo(installed, tmp_path):
  bin_dir, _ = installed
  where = subprocess.run(
      [
          str(bin_dir / "python"),
          "-c",
          "import graphcast_fdl.cli, graphcast_fdl.evaluation; " "print(graphcast_fdl.__file__)",
      ],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      check=True,
  ).stdout
  assert where.startswith(str(bin_dir.parent)), where
  help_ = _run(bin_dir, "--help", cwd=tmp_path)
  assert help_.returncode == 0 and "estimate" in help_.stdout
  est = _run(bin_dir, "estimate", "--config=config:demo", "--hardware=cpu", cwd=tmp_path)
  assert est.returncode == 0, est.stderr[-2000:]
  assert est.stdout.startswith("experiment demo on 1 x cpu"), est.stdout
