"""The estimator's price of a space-split example: sizes, traffic, memory, fit."""

import dataclasses

import fiddle as fdl
import pytest

from conftest import run_device_worker
from graphcast_fdl import experiments
from graphcast_fdl import graph as graph_lib
from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import cost_model
from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import fit as fit_lib
from graphcast_fdl.analysis import hardware
from graphcast_fdl.analysis import spatial_cost
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.cli import fit_flags
from graphcast_fdl.graph import partition as partition_lib
from graphcast_fdl.model import spatial as spatial_lib
from graphcast_fdl.model.config import ModelConfig, RematConfig

SMALL = ModelConfig(resolution=4.0, mesh_size=3, latent_size=32, gnn_msg_steps=4)
# graphcast_small's network: 1 deg / M5 / latent 512 / 16 steps, bfloat16.
ONE_DEG = ModelConfig(
    resolution=1.0, mesh_size=5, latent_size=512, gnn_msg_steps=16, precision="bfloat16"
)


def build(name, n, per_device_batch=1, spatial=1):
  cfg = getattr(experiments, name)()
  experiments.devices(cfg, n, per_device_batch, spatial)
  return fdl.build(cfg)


@pytest.mark.parametrize("num_parts", [2, 4])
def test_part_sizes_are_the_partitions(num_parts, tmp_path, monkeypatch):
  monkeypatch.setenv("GRAPHCAST_FDL_CACHE", str(tmp_path))
  spatial_cost._part_figures.cache_clear()  # pylint: disable=protected-access
  parts = partition_lib.partition_graphs(graph_lib.graphs_for_model(SMALL), num_parts)
  for _ in range(2):  # measured, then read back from the disk cache
    sizes = spatial_cost.part_sizes(SMALL, num_parts)
    assert sizes.grid_nodes == parts.grid.size and sizes.mesh_nodes == parts.mesh.size
    assert sizes.grid2mesh_edges == parts.grid2mesh.edges.shape[1]
    assert sizes.mesh_edges == parts.mesh_edges.edges.shape[1]
    assert sizes.mesh2grid_edges == parts.mesh2grid.edges.shape[1]
    # Sender tables: own rows plus K halo blocks.
    assert sizes.sender_rows("grid2mesh") == parts.grid.size + num_parts * parts.grid2mesh.halo_size
    assert sizes.sender_rows("mesh") == parts.mesh.size + num_parts * parts.mesh_edges.halo_size
    assert sizes.cut_fraction == pytest.approx(parts.cut_fraction)
    spatial_cost._part_figures.cache_clear()  # pylint: disable=protected-access
  assert len(list((tmp_path / "partition").glob("*.json"))) == 1
  assert spatial_cost.part_sizes(SMALL, 1) == spatial_cost.sizes_lib.graph_sizes(SMALL)


def test_exchanged_bytes_are_the_spatial_predictors():
  """At 1 deg / latent 512 / 16 steps, K = 4: what the estimator prices is
  what `SpatialPredictor.exchanged_bytes_per_step` counts (the figure
  benchmarks/spatial_parallel.py prints: 29.21 MiB per step, bfloat16)."""
  parts = partition_lib.partition_graphs(graph_lib.graphs_for_model(ONE_DEG), 4)
  rows = spatial_lib.exchanged_rows(parts, 16)
  sizes = spatial_cost.part_sizes(ONE_DEG, 4)
  halo = spatial_cost.exchange(
      ONE_DEG,
      sizes,
      remat=RematConfig(),
      precision_bytes=2,
      rollout_steps=1,
      batch=1,
      bandwidth=300e9,
  )
  assert halo.bytes == 2 * rows * 512 * 2  # forward + backward
  assert halo.bytes / 2**20 == pytest.approx(29.21, abs=0.01)
  assert halo.seconds == pytest.approx(halo.bytes / 300e9)
  assert halo.bytes_per_stage["encoder"] == 2 * 3 * parts.grid2mesh.halo_size * 1024
  # Every recomputation reruns its exchanges: per-step remat at rollout 2
  # adds a pass everywhere, encoder/decoder remat one more there.
  remat = RematConfig(rollout_step=True, encoder_decoder=True)
  again = spatial_cost.exchange(
      ONE_DEG,
      sizes,
      remat=remat,
      precision_bytes=2,
      rollout_steps=2,
      batch=1,
      bandwidth=300e9,
  )
  assert again.bytes_per_stage["processor"] == 2 * 3 * halo.bytes_per_stage["processor"] / 2
  assert again.bytes_per_stage["encoder"] == 2 * 4 * halo.bytes_per_stage["encoder"] / 2


def test_memory_falls_with_the_split_and_state_stays_whole():
  phases = {k: estimator.estimate(build("graphcast_small", 32, 1, k), "tpu_v4") for k in (1, 2, 4)}
  one = phases[1].phases[-1]  # rollout 12
  previous = None
  for k, est in phases.items():
    p = est.phases[-1]
    assert p.spatial == k
    # Replicated: parameters, optimiser state, gradients.
    assert (p.params_bytes, p.optimizer_bytes, p.gradient_bytes) == (
        one.params_bytes,
        one.optimizer_bytes,
        one.gradient_bytes,
    )
    # Split by band: the example (whole rows, so up to one band of padding).
    assert p.data_bytes == pytest.approx(one.data_bytes / k, rel=0.05)
    if previous is not None:
      assert p.peak_bytes_per_device < 0.7 * previous.peak_bytes_per_device
      assert p.activation_bytes < 0.7 * previous.activation_bytes
    assert (p.exchange_bytes_per_step > 0) == (k > 1)
    previous = p
  est = phases[4]
  p = est.phases[0]
  # The exchange is priced into the step at the chip's one-way ICI rate.
  assert sum(p.exchange_seconds.values()) == pytest.approx(
      p.exchange_bytes_per_step / hardware.get("tpu_v4").interconnect_bandwidth
  )
  table = estimator.format_table(est)
  assert "1 example(s) per group of 4 devices" in table
  assert "halo exchange of a space-split example" in table
  assert "each example split over 4 devices" in table


def test_edge_blocks_scale_with_the_split():
  model = ModelConfig(edge_block_size=32_768, remat=RematConfig(grid_block_size=100))
  split = spatial_lib.part_blocks(model, 4)
  assert (split.edge_block_size, split.remat.grid_block_size) == (8192, 25)
  assert spatial_lib.part_blocks(ModelConfig(), 4).edge_block_size is None
  # Priced as run: a block's temporaries shrink with the split (1 deg,
  # blocks of 32,768 edges, the largest temporary unsplit; unscaled, K = 4 keeps it).
  blocked = dataclasses.replace(ONE_DEG, edge_block_size=32_768)
  remat = RematConfig(rollout_step=True, processor_every_k=1, encoder_decoder=True)

  def temporaries(k):
    model, part_remat = spatial_cost.part_settings(blocked, remat, k)
    return cost_model.step_cost(
        model, task_lib.task_13(), remat=part_remat, graph=spatial_cost.part_sizes(blocked, k)
    ).temporary_bytes

  assert temporaries(4) < 0.5 * temporaries(1)


def test_hardware_table_prices_the_interconnect_one_way():
  one_way = {"tpu_v4": 300e9, "tpu_v5e": 200e9, "tpu_v5p": 600e9, "tpu_v6e": 400e9}
  one_way |= {"a100_40gb": 300e9, "a100_80gb": 300e9, "h100": 450e9, "h200": 450e9}
  for name, bandwidth in one_way.items():
    assert hardware.get(name).interconnect_bandwidth == bandwidth


def test_spatial_splits_keep_the_global_batch():
  assert fit_lib.spatial_splits(build("graphcast", 32), 32) == (1, 2, 4, 8)
  # 8 examples on 32 chips: only splits of 4 or more give every group one.
  assert fit_lib.spatial_splits(build("graphcast", 32, 1, 4), 32) == (4, 8)


def test_fit_searches_spatial_splits_when_nothing_else_fits():
  experiment = build("graphcast_small", 8)
  unsplit = fit_lib.search(experiment, "tpu_v4", None, 8, top=10_000, spatials=(1,))
  # Below what the unsplit model reaches with the policies a split model runs
  # too (it has no rollout knobs: `fit.runs_split`).
  budget = 0.9 * min(r.peak_bytes for r in unsplit if fit_lib.runs_split(r.remat, 2))
  results = fit_lib.search(
      experiment, "tpu_v4", budget, 8, top=3, spatials=(1, 2, 4), per_device_batches=(1,)
  )
  assert results and all(r.spatial > 1 for r in results)
  best = results[0]
  assert best.changes["mesh.spatial"] == best.spatial
  assert best.changes["per_device_batch"] == 1
  flags = fit_flags.render(best.changes, 8)
  assert flags[0] == f"--config=fiddler:devices(n=8,per_device_batch=1,spatial={best.spatial})"
  candidate = fit_lib.with_settings(
      experiment, best.remat, best.edge_block_size, best.precision, 8, 1, best.spatial
  )
  assert candidate.mesh.spatial == best.spatial
  assert candidate.data.global_batch_size == 8 // best.spatial
  est = estimator.estimate(candidate, "tpu_v4")
  assert max(p.peak_bytes_per_device for p in est.phases) <= budget
  durations = [r.total_duration_seconds for r in results]
  assert durations == sorted(durations)


@pytest.mark.slow
def test_space_split_batch_arrives_in_bands():
  """XLA's own argument sizes of the trainer's compiled step on 4 CPU
  devices: with K devices per example each holds 1 / K of its arrays."""
  out = run_device_worker("spatial_memory_worker.py", 1200)
  example = out["args_1"] - out["state_1"]
  for k in (2, 4):
    assert out[f"state_{k}"] == out["state_1"]
    share = (out[f"args_{k}"] - out[f"state_{k}"]) / example
    assert 1 / k <= share < 1 / k + 0.01  # the progress features stay whole


def test_local_xla_figures_need_the_split_s_devices():
  cost = xla_cost.analyze(
      build("graphcast_small", 32, 1, 4),
      rollout_steps=1,
      remat=RematConfig(),
      precision="bfloat16",
      max_edges=10**9,
      use_cache=False,
  )
  assert not cost.available and "split over 4 devices" in cost.reason


def test_wider_split_is_the_smallest_that_fits():
  experiment = build("graphcast_small", 32)
  budget = 3 * 2**30
  # Under XLA:TPU's retention 4 chips per example are not enough; 8 are.
  assert fit_lib.wider_split(experiment, "tpu_v4", budget) == (8, 256)
  narrower = build("graphcast_small", 128, 1, 4)
  assert not all(p.fits for p in fit_lib.phase_policies(narrower, "tpu_v4", budget))
  wider = build("graphcast_small", 256, 1, 8)
  assert wider.data.global_batch_size == experiment.data.global_batch_size
  assert all(p.fits for p in fit_lib.phase_policies(wider, "tpu_v4", budget))
  assert not all(
      p.fits for p in fit_lib.phase_policies(build("graphcast_small", 64, 1, 2), "tpu_v4", budget)
  )
