"""Times building GraphCast graphs and loading them back from the disk cache.

  python benchmarks/graph_build.py                       # 4/M3, 1/M5, 0.25/M6
  python benchmarks/graph_build.py --configs 4:3,2:4     # resolution:mesh pairs

Builds into a fresh temporary cache directory (so nothing is reused from an
earlier run), then loads the cached file back. Prints a table and, last, one
JSON line with the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from graphcast_fdl import graph


def _measure(resolution: float, mesh_size: int, include_poles: bool, cache_dir: str) -> dict:
  start = time.perf_counter()
  built = graph.build_graphs(resolution, include_poles, mesh_size, cache_dir=cache_dir)
  build_s = time.perf_counter() - start
  start = time.perf_counter()
  loaded = graph.build_graphs(resolution, include_poles, mesh_size, cache_dir=cache_dir)
  load_s = time.perf_counter() - start
  assert loaded.sizes() == built.sizes()
  sizes = built.sizes()
  file_mb = sum(os.path.getsize(os.path.join(cache_dir, f)) for f in os.listdir(cache_dir)) / 2**20
  return dict(
      resolution=resolution,
      mesh_size=mesh_size,
      include_poles=include_poles,
      grid_nodes=sizes["grid_nodes"],
      mesh_nodes=sizes["mesh_nodes"],
      multimesh_edges=sizes["multimesh_edges"],
      grid2mesh_edges=sizes["grid2mesh_edges"],
      mesh2grid_edges=sizes["mesh2grid_edges"],
      build_and_save_s=round(build_s, 3),
      cached_load_s=round(load_s, 3),
      cache_file_mb=round(file_mb, 1),
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--configs", default="4:3,1:5,0.25:6", help="comma-separated resolution:mesh_size pairs"
  )
  parser.add_argument("--no_poles", action="store_true", help="grids without the +-90 rows")
  args = parser.parse_args()
  rows = []
  for spec in args.configs.split(","):
    resolution, mesh_size = spec.split(":")
    with tempfile.TemporaryDirectory() as cache_dir:
      rows.append(_measure(float(resolution), int(mesh_size), not args.no_poles, cache_dir))
  header = (
      "res",
      "mesh",
      "grid nodes",
      "mesh nodes",
      "multimesh",
      "grid2mesh",
      "mesh2grid",
      "build+save s",
      "cached load s",
      "file MB",
  )
  keys = (
      "resolution",
      "mesh_size",
      "grid_nodes",
      "mesh_nodes",
      "multimesh_edges",
      "grid2mesh_edges",
      "mesh2grid_edges",
      "build_and_save_s",
      "cached_load_s",
      "cache_file_mb",
  )
  print(" | ".join(header))
  for row in rows:
    print(" | ".join(str(row[k]) for k in keys))
  print(
      json.dumps(
          {
              "benchmark": "graph_build",
              "machine": platform.machine(),
              "cpus": os.cpu_count(),
              "rows": rows,
          }
      )
  )


if __name__ == "__main__":
  main()
