"""BUILD lists every package and test: regenerating it changes nothing."""

import importlib.util
import os

from conftest import REPO


def _build_file_tool():
  spec = importlib.util.spec_from_file_location(
      "build_file", os.path.join(REPO, "tools", "build_file.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_build_file_is_in_step_with_the_source_tree():
  with open(os.path.join(REPO, "BUILD")) as f:
    current = f.read()
  assert current == _build_file_tool().render(), "BUILD is stale: run python tools/build_file.py"


def test_every_module_and_test_is_declared():
  with open(os.path.join(REPO, "BUILD")) as f:
    build = f.read()
  for folder in ("graphcast_fdl", "experiments", "datasets", "tests"):
    for root, _, files in os.walk(os.path.join(REPO, folder)):
      for name in files:
        if name.endswith(".py") and "__pycache__" not in root:
          rel = os.path.relpath(os.path.join(root, name), REPO)
          if folder != "tests" or name.startswith("test_"):
            assert f'"{rel}"' in build, f"{rel} is missing from BUILD"
