"""`estimate`: time and memory per phase before launching.

  python -m graphcast_fdl.main estimate --config=config:graphcast \
      [--hardware=tpu_v4] [--format=json] [--xla] [--png=out.png]
  python -m graphcast_fdl.main estimate --config=config:graphcast --fit \
      [--memory_gib=32] [--config=fiddler:devices(n=32)]
"""

from __future__ import annotations

import json
import shlex

from absl import flags

from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import fit as fit_lib
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import plot
from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError

HARDWARE = flags.DEFINE_string(
    "hardware", "tpu_v4", f"One of: {', '.join(hardware_lib.names())}.")
FORMAT = flags.DEFINE_enum("format", "text", ["text", "json"], "Output format.")
XLA = flags.DEFINE_bool(
    "xla", False, "Also compile loss+grad on abstract shapes and show XLA's "
    "cost/memory analysis (small graphs only).")
PNG = flags.DEFINE_string("png", None, "Write the timeline/memory figure here.")
FIT = flags.DEFINE_bool(
    "fit", False, "Search remat, edge blocks, precision and per-device batch "
    "for the cheapest settings that fit; print them as --config flags.")
MEMORY_GIB = flags.DEFINE_float(
    "memory_gib", None, "Memory budget per device for --fit (default: the "
    "hardware's).")


def main(argv: list[str]) -> None:
  del argv
  if HARDWARE.value not in hardware_lib.names():
    raise UsageError(f"--hardware={HARDWARE.value!r}: choose from "
                     f"{', '.join(hardware_lib.names())}")
  experiment = config_flags.build_experiment()
  if FIT.value:
    _fit(experiment)
    return
  est = estimator.estimate(experiment, HARDWARE.value, use_xla=XLA.value)
  if FORMAT.value == "json":
    print(est.to_json())
  else:
    print(estimator.format_table(est))
  if PNG.value:
    plot.save_png(est, PNG.value)
    if FORMAT.value == "text":
      print(f"figure: {PNG.value}")


def _fit(experiment) -> None:
  budget = None if MEMORY_GIB.value is None else MEMORY_GIB.value * 2**30
  devices = estimator.num_devices_of(experiment)
  results = fit_lib.search(experiment, HARDWARE.value, budget, devices)
  if FORMAT.value == "json":
    print(json.dumps([r.to_dict() for r in results], indent=2))
    return
  if not results:
    print(f"nothing fits {MEMORY_GIB.value or 'device'} GiB on {devices} "
          f"device(s): add devices or shard params")
    return
  for rank, r in enumerate(results, 1):
    print(f"#{rank}: {r.seconds_per_example:.3g} device-s/example, "
          f"{r.total_duration_seconds / 86400:.2f} d, peak "
          f"{r.peak_bytes / 2**30:.2f} GiB")
    print("  " + " ".join(shlex.quote(f) for f in r.flags))
