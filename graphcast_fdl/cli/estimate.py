r"""`estimate`: time and memory per phase before launching.

  graphcast_fdl estimate --config=config:graphcast \
      [--hardware=tpu_v4] [--format=json] [--xla] [--png=out.png]
  graphcast_fdl estimate --config=config:graphcast --fit \
      [--memory_gib=32] [--config=fiddler:devices(n=32)]
"""

from __future__ import annotations

import json
import shlex
import sys

from absl import flags

from graphcast_fdl.analysis import estimator
from graphcast_fdl.analysis import fit as fit_lib
from graphcast_fdl.cli import fit_flags
from graphcast_fdl.analysis import hardware as hardware_lib
from graphcast_fdl.analysis import plot
from graphcast_fdl.analysis import xla_cost
from graphcast_fdl.cli import config_flags
from graphcast_fdl.cli.errors import UsageError
from graphcast_fdl.task import format_seconds

HARDWARE = flags.DEFINE_string("hardware", "tpu_v4", f"One of: {', '.join(hardware_lib.names())}.")
FORMAT = flags.DEFINE_enum("format", "text", ["text", "json"], "Output format.")
XLA = flags.DEFINE_bool(
    "xla",
    False,
    "Also compile the train step on abstract shapes and show XLA's "
    "cost/memory analysis: XLA:TPU for --hardware=tpu_* (needs "
    'pip install -e ".[tpu]"; decides fits), else this machine\'s backend '
    "(small graphs only). Figures are cached on disk per program.",
)
PNG = flags.DEFINE_string("png", None, "Write the timeline/memory figure here.")
FIT = flags.DEFINE_bool(
    "fit",
    False,
    "Search remat, edge blocks and precision for the fastest "
    "settings that fit; print what they change as --config flags.",
)
MEMORY_GIB = flags.DEFINE_float(
    "memory_gib", None, "Memory budget per device for --fit (default: the " "hardware's)."
)


def main(argv: list[str]) -> None:
  del argv
  if HARDWARE.value not in hardware_lib.names():
    raise UsageError(
        f"--hardware={HARDWARE.value!r}: choose from " f"{', '.join(hardware_lib.names())}"
    )
  experiment = config_flags.build_experiment()
  if FIT.value:
    _fit(experiment)
    return
  try:
    est = estimator.estimate(
        experiment,
        HARDWARE.value,
        use_xla=XLA.value,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
  except xla_cost.TpuCompilerMissing as e:
    raise UsageError(str(e)) from None
  note = _host_note(est.num_devices)
  if note:
    est.notes.append(note)
  if FORMAT.value == "json":
    print(est.to_json())
  else:
    print(estimator.format_table(est))
  if PNG.value:
    plot.save_png(est, PNG.value)
    if FORMAT.value == "text":
      print(f"figure: {PNG.value}")


def _host_note(num_devices: int) -> str | None:
  """`--hardware=cpu` means this machine: say when it has fewer devices."""
  if HARDWARE.value != "cpu":
    return None
  import jax  # pylint: disable=g-import-not-at-top

  here = jax.device_count()
  if num_devices <= here:
    return None
  return (
      f"priced for {num_devices} CPU devices like this host's, which has "
      f"{here}: read the figures as {num_devices} such machines, or "
      f"price this one with --config=fiddler:devices(n={here})"
  )


def _explain_no_fit(experiment, budget: float | None, devices: int) -> None:
  """Why no one setting fits: the phases that fit under no remat policy."""
  hw = hardware_lib.get(HARDWARE.value)
  gib = (hw.memory_bytes if budget is None else budget) / 2**30
  print(
      f"no single setting fits every phase in {gib:.1f} GiB per device on " f"{devices} device(s)."
  )
  policies = fit_lib.phase_policies(experiment, HARDWARE.value, budget)
  hopeless = [p for p in policies if not p.fits]
  rollouts = {p.name: p.rollout_steps for p in experiment.schedule.phases}
  advice = []
  if len(hopeless) < len(policies):
    advice.append("--config=fiddler:fit_memory() (each phase its own policy)")
  if hopeless:
    print(
        "phases that fit under no remat policy (smallest peak found): "
        + ", ".join(f"{p.phase} {p.peak_bytes / 2**30:.1f} GiB" for p in hopeless)
    )
    fitting = [rollouts[p.phase] for p in policies if p.fits]
    if fitting and max(fitting) > 1:
      advice.append(
          f"'--config=fiddler:annealing(max_rollout={max(fitting)})'" " (only rollouts that fit)"
      )
    wider = fit_lib.wider_split(experiment, HARDWARE.value, budget)
    if wider:
      k, n = wider
      per_group = experiment.data.global_batch_size * k // n
      advice.append(
          f"each example over {k} devices, {n} in all: "
          f"'--config=fiddler:devices(n={n},per_device_batch={per_group},spatial={k})' "
          "'--config=fiddler:fit_memory()'"
      )
    advice.append("a device with more memory")
  print("try: " + "; or ".join(advice))


def _fit(experiment) -> None:
  budget = None if MEMORY_GIB.value is None else MEMORY_GIB.value * 2**30
  devices = estimator.num_devices_of(experiment)
  results = fit_lib.search(experiment, HARDWARE.value, budget, devices)
  note = _host_note(devices)
  if note and FORMAT.value == "text":
    print(f"note: {note}")
  if FORMAT.value == "json":
    print(json.dumps([r.to_dict() for r in results], indent=2))
    return
  if not results:
    _explain_no_fit(experiment, budget, devices)
    return
  for rank, r in enumerate(results, 1):
    split = "no spatial split" if r.spatial == 1 else f"each example over {r.spatial} devices"
    print(
        f"#{rank}: {format_seconds(r.total_duration_seconds)}, "
        f"peak {r.peak_bytes / 2**30:.2f} GiB, "
        f"{r.seconds_per_example:.3g} device-s/example, {split}"
    )
    print(
        "  "
        + (
            " ".join(shlex.quote(f) for f in fit_flags.render(r.changes, devices))
            or "(the settings as configured)"
        )
    )
