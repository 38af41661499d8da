"""Package discovery; everything else is in pyproject.toml.

`experiments/` and `datasets/` live at the top of the repo for people to edit
but install as `graphcast_fdl.experiments` and `graphcast_fdl.datasets`
(pyproject's `package-dir`). setuptools' `packages.find` cannot rename what it
finds, so the packages are found here: a new subpackage anywhere is installed
without editing a list (tests/test_packaging.py builds the wheel to check).
"""

import setuptools

_MAPPED = ("experiments", "datasets")  # Installed under graphcast_fdl.


def _packages() -> list[str]:
  found = setuptools.find_packages(include=["graphcast_fdl", "graphcast_fdl.*"])
  mapped = setuptools.find_packages(include=[p for name in _MAPPED for p in (name, f"{name}.*")])
  return sorted(found + [f"graphcast_fdl.{name}" for name in mapped])


setuptools.setup(packages=_packages())
