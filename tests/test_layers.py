"""No import climbs the layer ladder written in graphcast_fdl/__init__.py.

Every import of the library, experiments/ and datasets/ is parsed with `ast`
(those inside functions too, so hiding an edge in a function does not hide
it from here) and checked against the ladder in the package docstring, the
one place it is written.
"""

import ast
import os
import re

import graphcast_fdl
from conftest import REPO

# Source folders and the name they install under (see pyproject).
ROOTS = {
    "graphcast_fdl": "graphcast_fdl",
    "experiments": "graphcast_fdl.experiments",
    "datasets": "graphcast_fdl.datasets",
}


def _ladder() -> tuple[dict[str, int], set[tuple[str, str]]]:
  """({package or top-level module: layer}, {allowed peer edges})."""
  layers, peers = {}, set()
  for line in graphcast_fdl.__doc__.splitlines():
    if match := re.match(r"^\s+(\d+)\.\s+([a-z_ ]+):", line):
      for name in match.group(2).split():
        layers[name] = int(match.group(1))
    elif match := re.match(r"^\s+peers:\s+(.*)$", line):
      for edge in match.group(1).split(","):
        source, target = (part.strip() for part in edge.split("->"))
        peers.add((source, target))
  return layers, peers


def _modules():
  """(path, dotted module name) of every source file."""
  for folder, prefix in ROOTS.items():
    for root, dirs, files in os.walk(os.path.join(REPO, folder)):
      dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
      for name in sorted(files):
        if name.endswith(".py"):
          rel = os.path.relpath(os.path.join(root, name), os.path.join(REPO, folder))
          parts = rel[:-3].split(os.sep)
          if parts[-1] == "__init__":
            parts = parts[:-1]
          yield os.path.join(root, name), ".".join([prefix] + parts)


def _package(module: str) -> str | None:
  """The ladder name a dotted module belongs to (None: the root package)."""
  parts = module.split(".")
  if parts[0] != "graphcast_fdl":
    return "third party"
  return parts[1] if len(parts) > 1 else None


def _imports(path: str, module: str):
  """(line, imported dotted name) of every import, at any depth."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against this module's package
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      for alias in node.names:
        # `from graphcast_fdl import task` imports the module graphcast_fdl.task.
        yield node.lineno, f"{base}.{alias.name}" if base == "graphcast_fdl" else base


def _violations(modules):
  layers, peers = _ladder()
  for path, module in modules:
    own = _package(module)
    rel = os.path.relpath(path, REPO)
    if own is not None and own not in layers:
      yield f"{rel}: {own!r} is not on the ladder in graphcast_fdl/__init__.py"
      continue
    for line, name in _imports(path, module):
      target = _package(name)
      if target in ("third party", own):
        continue
      if target is None or own is None:
        yield f"{rel}:{line} imports {name}: the root package imports nothing"
        continue
      if target not in layers:
        yield f"{rel}:{line} imports {name}: {target!r} is not on the ladder"
      elif layers[target] > layers[own]:
        yield (
            f"{rel}:{line} imports {name}: {own} (layer {layers[own]}) "
            f"climbs to {target} (layer {layers[target]})"
        )
      elif layers[target] == layers[own] and (own, target) not in peers:
        yield (
            f"{rel}:{line} imports {name}: {own} and {target} are peers "
            f"(layer {layers[own]}) and this edge is not allowed"
        )


def test_the_ladder_is_written_once_and_complete():
  layers, peers = _ladder()
  assert sorted(set(layers.values())) == list(range(len(set(layers.values()))))
  on_disk = {
      n[:-3] if n.endswith(".py") else n
      for n in os.listdir(os.path.join(REPO, "graphcast_fdl"))
      if not n.startswith(("_", "."))
      and (n.endswith(".py") or os.path.isdir(os.path.join(REPO, "graphcast_fdl", n)))
  }
  assert on_disk | {"experiments", "datasets"} == set(layers)
  for source, target in peers:
    assert layers[source] == layers[target], (source, target)


def test_no_import_climbs_the_ladder():
  problems = list(_violations(_modules()))
  assert not problems, "\n".join(problems)


def test_hidden_climbs_and_peer_edges_are_caught(tmp_path):
  """The checker itself: an edge hidden in a function is still an edge."""
  path = tmp_path / "hidden.py"
  path.write_text(
      "import numpy as np\nfrom graphcast_fdl import grid\n"
      "def f():\n  from graphcast_fdl.cli import train\n"
      "  from graphcast_fdl import evaluation\n"
  )
  problems = list(_violations([(str(path), "graphcast_fdl.analysis.hidden")]))
  assert len(problems) == 2
  assert "hidden.py:4 imports graphcast_fdl.cli: analysis (layer 6) climbs" in problems[0]
  assert "analysis and evaluation are peers" in problems[1]
