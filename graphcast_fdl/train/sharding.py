"""The device mesh and how the batch, parameters and optimiser state lie on it.

One mesh axis (`MeshConfig.data_axis`) carries data parallelism: every array
of a batch is split over it along its leading (batch) axis. Parameters and
optimiser state are replicated, or with `MeshConfig.shard_params` split over
the same axis along their largest divisible dimension (FSDP-style; XLA
gathers them where the step needs them). The same code runs on one CPU, many
local devices or many hosts: only `MeshConfig.num_devices` changes. With
`MeshConfig.spatial` > 1 a second axis splits each example
(`graphcast_fdl.model.spatial`, whose loss splits the batch itself).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from graphcast_fdl.model.batch import Batch
from graphcast_fdl.train.config import MeshConfig


class MeshError(ValueError):
  """A mesh the visible devices cannot provide; the message says which field."""


def make_mesh(config: MeshConfig, devices=None) -> Mesh:
  """A 1-D mesh over the first `config.num_devices` devices (all if None),
  2-D (data, space) if `config.spatial` > 1.

  With several processes every device must take part: each host feeds its
  own devices, so a mesh cannot leave some hosts' devices out.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = config.num_devices or len(devices)
  if n > len(devices):
    raise MeshError(f"mesh.num_devices={n} but only {len(devices)} device(s) are visible")
  if jax.process_count() > 1 and n != len(devices):
    raise MeshError(
        f"mesh.num_devices={n} must equal all {len(devices)} devices across "
        f"{jax.process_count()} processes"
    )
  if config.spatial == 1:
    return Mesh(np.asarray(devices[:n]), (config.data_axis,))
  if n % config.spatial:
    raise MeshError(f"mesh.spatial={config.spatial} does not divide " f"mesh.num_devices={n}")
  # A data x space mesh; each example's devices are neighbours in device
  # order (the same host where possible), as its halo traffic is the densest.
  return Mesh(
      np.asarray(devices[:n]).reshape(n // config.spatial, config.spatial),
      (config.data_axis, config.space_axis),
  )


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the data axis, the rest whole."""
  return NamedSharding(mesh, P(mesh.axis_names[0]))


def train_batch_sharding(mesh: Mesh, host_targets: bool = False, host_inputs: bool = False):
  """`batch_sharding` for every leaf of a train batch (a `Batch`-prefix
  tree); with `host_targets` / `host_inputs` (`RematConfig`) its targets /
  input frames live in pinned host memory, the step copying to the device
  what it uses when it uses it."""
  sharding = batch_sharding(mesh)
  if not host_targets and not host_inputs:
    return sharding
  host = sharding.with_memory_kind("pinned_host")
  return Batch(
      inputs=host if host_inputs else sharding,
      targets=host if host_targets else sharding,
      forcings=sharding,
  )


def _sharded_spec(shape, axis_name: str, axis_size: int) -> P:
  """Split the largest dimension divisible by the axis size, else none."""
  candidates = [
      (size, dim) for dim, size in enumerate(shape) if size % axis_size == 0 and size >= axis_size
  ]
  if axis_size == 1 or not candidates:
    return P()
  _, dim = max(candidates)
  spec = [None] * len(shape)
  spec[dim] = axis_name
  return P(*spec)


def state_shardings(abstract_tree, mesh: Mesh, shard_params: bool = False):
  """A NamedSharding per leaf of a (shape-only) parameter or state tree."""
  axis = mesh.axis_names[0]
  size = mesh.shape[axis]

  def leaf(x):
    if not shard_params:
      return replicated(mesh)
    return NamedSharding(mesh, _sharded_spec(np.shape(x), axis, size))

  return jax.tree.map(leaf, abstract_tree)


def data_parallel(loss_fn, mesh: Mesh):
  """`loss_fn(params, batch)` run by each device on its share of the batch.

  Returns a function with the same signature whose (loss, per-variable)
  outputs are the means over devices, which equal the global-batch means
  since every device holds the same number of examples. Gradients through it
  are the global gradients (shard_map sums the replicated parameters'
  cotangents over the data axis).

  Why not let XLA partition the jitted loss by itself: the model keeps
  latents as [nodes, batch, latent] and flattens them to [nodes * batch,
  latent] for its row-wise layers; a batch split does not survive that
  reshape, so XLA's propagation replicated the batch and every device
  computed the whole global batch (seen in the compiled program's shapes).
  """
  if mesh.size == 1:
    return loss_fn
  if getattr(getattr(loss_fn, "__self__", None), "splits_batch", False):
    return loss_fn  # `model.spatial`: splits the batch over the data axis too.
  axis = mesh.axis_names[0]

  def local(params, batch):
    return jax.lax.pmean(loss_fn(params, batch), axis)

  return jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axis)), out_specs=P())


def process_rows(mesh: Mesh) -> tuple[int, int]:
  """(index, count): this process loads block `index` of the global batch cut
  into `count` equal blocks, the examples of the data rows its devices hold.

  Each example is loaded once per process that needs it: processes whose
  devices share data rows (a space group spread over hosts) load the same
  block, and no process loads examples only other hosts' devices hold.
  """
  rows = mesh.devices.reshape(mesh.devices.shape[0], -1)
  by_process = {}
  for row, devices in enumerate(rows):
    for device in devices:
      by_process.setdefault(device.process_index, set()).add(row)
  blocks = {p: sorted(r) for p, r in by_process.items()}
  size = len(blocks[jax.process_index()])
  for process, block in blocks.items():
    if len(block) != size or block != list(range(block[0], block[0] + size)) or block[0] % size:
      raise MeshError(
          f"mesh {dict(mesh.shape)}: process {process} holds data rows {block}; every process "
          "must hold an equal, aligned run of rows"
      )
  first = blocks[jax.process_index()][0]
  return first // size, rows.shape[0] // size


def per_process_batch_size(global_batch_size: int, mesh: Mesh | None = None) -> int:
  """Examples each host loads (`process_rows`: blocks of the global batch)."""
  count = process_rows(mesh)[1] if mesh is not None else jax.process_count()
  if global_batch_size % count:
    raise MeshError(
        f"data.global_batch_size={global_batch_size} is not divisible by the "
        f"{count} processes' data rows"
    )
  return global_batch_size // count


def to_global(local_tree, mesh: Mesh, shardings=None):
  """Host-local batch arrays -> global arrays split over the data axis.

  Each process passes its block of the global batch (leading axis,
  `process_rows`); with one process that block is the whole batch.
  `shardings`: a prefix tree of `local_tree` (default: `batch_sharding` for
  every leaf); it may also split other axes, e.g. latitude bands over the
  space axis (each device then receives only its part of the examples) or
  put targets in host memory (`train_batch_sharding`).
  """
  count = process_rows(mesh)[1]
  if shardings is None:
    shardings = batch_sharding(mesh)

  def place(sharding, leaf):
    leaf = np.asarray(leaf)
    shape = (leaf.shape[0] * count,) + leaf.shape[1:]
    return jax.make_array_from_process_local_data(sharding, leaf, shape)

  return jax.tree.map(
      lambda s, x: jax.tree.map(lambda leaf: place(s, leaf), x), shardings, local_tree
  )
