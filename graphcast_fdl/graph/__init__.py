"""Icosahedral multi-mesh and grid<->mesh graphs (numpy/scipy, cached on disk).

Faithful to the published GraphCast graph construction: same node orders,
edge orders and features, so a port of a published checkpoint reproduces it.

Grid node order: a `[lat, lon]` field flattened row-major,
`node = lat_index * num_lon + lon_index`, latitudes ascending from the south
(-90 first on grids with poles), longitudes ascending from 0. So grid inputs
shaped `[batch, lat, lon, channels]` become node features with
`x.reshape(batch, num_lat * num_lon, channels)` (the published model stacks
them as `[lat * lon, batch, channels]`), and outputs go back with the inverse
reshape.

Mesh node order: vertices of the finest icosahedral mesh in published order.

Usage:
  graphs = graph.graphs_for_model(model_config)   # cached on disk
  graphs.grid2mesh.senders   # [E] grid node indices
  graphs.sizes()             # counts, as in the golden report.json
"""

from graphcast_fdl.graph.cache import DEFAULT
from graphcast_fdl.graph.graphs import build_graphs
from graphcast_fdl.graph.graphs import EdgeSet
from graphcast_fdl.graph.graphs import graphs_for_model
from graphcast_fdl.graph.graphs import GraphCastGraphs

__all__ = [
    "DEFAULT",
    "EdgeSet",
    "GraphCastGraphs",
    "build_graphs",
    "graphs_for_model",
]
