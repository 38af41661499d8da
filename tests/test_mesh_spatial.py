"""The space axis of the mesh in configs: devices(n, spatial=k) moves batch
and mesh together; bad splits name their field."""

import fiddle as fdl
import pytest

from graphcast_fdl import experiments
from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.train.config import MeshConfig


def test_devices_with_spatial_sets_mesh_and_batch_per_data_group():
  cfg = experiments.graphcast_operational()
  experiments.devices(cfg, n=8, per_device_batch=2, spatial=4)
  built = fdl.build(cfg)
  assert (built.mesh.num_devices, built.mesh.spatial) == (8, 4)
  # 8 devices in 2 groups of 4 sharing each example: 2 x 2 examples a step.
  assert built.data.global_batch_size == 4
  assert [p.data.global_batch_size for p in built.schedule.phases if p.data] == [4]
  experiments.devices(cfg, n=8)
  built = fdl.build(cfg)
  assert (built.mesh.spatial, built.data.global_batch_size) == (1, 8)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--config=fiddler:devices(n=6, spatial=4)"],
            "devices(n=6, spatial=4): spatial must divide n",
        ),
        (["--config=fiddler:devices(n=4, spatial=0)"], "all must be >= 1"),
        (
            ["--config=set:mesh.num_devices=4", "--config=set:mesh.spatial=3"],
            "mesh.spatial=3 does not divide mesh.num_devices=4",
        ),
        (["--config=set:mesh.spatial=0"], "mesh.spatial=0: must be a whole number"),
    ],
)
def test_bad_spatial_splits_name_the_field(parse_flags, args, message):
  parse_flags("--config=config:demo", *args)
  with pytest.raises(UsageError) as info:
    config_flags.build_experiment()
  assert message in str(info.value)


def test_mesh_config_rejects_non_integer_spatial():
  with pytest.raises(ValueError, match="mesh.spatial=2.0"):
    MeshConfig(spatial=2.0)
