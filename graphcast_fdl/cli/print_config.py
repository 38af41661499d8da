"""`print_config`: the resolved experiment, flattened or as Fiddle JSON."""

from absl import flags
from fiddle.experimental import serialization

from graphcast_fdl.cli import config_flags

FORMAT = flags.DEFINE_enum(
    "format", "text", ["text", "json"], "text: one field a line; json: Fiddle JSON."
)


def main(argv: list[str]) -> None:
  del argv
  cfg = config_flags.experiment_config()
  config_flags.build_experiment(cfg)  # Fail here on fields that do not fit.
  if FORMAT.value == "json":
    print(serialization.dump_json(cfg, indent=2))
  else:
    print(config_flags.flattened(cfg))
