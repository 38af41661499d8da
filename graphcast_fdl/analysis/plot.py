"""PNG of an estimate: phase timeline and per-device memory breakdown."""

from __future__ import annotations

from graphcast_fdl.analysis.estimator import Estimate

GiB = 2**30
# (seconds per unit, name): the first the whole schedule fills 2 of.
_TIME_UNITS = ((86_400.0, "days"), (3600.0, "hours"), (60.0, "minutes"), (1.0, "seconds"))
_DOES_NOT_FIT = "tab:red"
_FITS = "tab:blue"
_PARTS = (
    ("params_bytes", "params"),
    ("optimizer_bytes", "AdamW state"),
    ("gradient_bytes", "grads"),
    ("data_bytes", "batch"),
    ("activation_bytes", "activations"),
    ("temporary_bytes", "temporaries"),
)


def time_unit(seconds: float) -> tuple[float, str]:
  """(seconds per unit, unit name): the largest unit `seconds` fills 2 of."""
  return next(((s, u) for s, u in _TIME_UNITS if seconds >= 2 * s), _TIME_UNITS[-1])


def save_png(est: Estimate, path: str) -> None:
  """Left: a bar per phase, as long as its wall-clock time, laid end to end.
  Right: stacked memory per phase against the device's memory."""
  # Plotting only: matplotlib loads when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  phases = est.phases
  total = est.total_duration_seconds
  scale, unit = time_unit(total)
  fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14.5, max(3.0, 0.35 * len(phases) + 1.5)))
  start = 0.0
  for i, p in enumerate(phases):
    ax_t.barh(
        i,
        p.duration_seconds / scale,
        left=start / scale,
        color=_FITS if p.fits else _DOES_NOT_FIT,
        edgecolor="k",
        linewidth=0.5,
        hatch=None if p.fits else "//",
    )
    start += p.duration_seconds
  ax_t.set_yticks(range(len(phases)), [f"{p.name} (x{p.rollout_steps})" for p in phases])
  ax_t.invert_yaxis()
  ax_t.set_xlabel(f"wall clock ({unit}; steps only, no compilation)")
  ax_t.set_title(
      f"{est.experiment}: {total / scale:.3g} {unit} " f"on {est.num_devices} x {est.hardware}"
  )
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top

  ax_t.legend(
      handles=[
          Patch(facecolor=_FITS, edgecolor="k", label="fits"),
          Patch(facecolor=_DOES_NOT_FIT, edgecolor="k", hatch="//", label="does not fit"),
      ],
      fontsize=7,
      loc="upper right",
  )
  left = [0.0] * len(phases)
  # Memory parts from a map without red, which means "does not fit".
  colours = matplotlib.colormaps["Set2"].colors
  for (field, label), colour in zip(_PARTS, colours):
    values = [getattr(p, field) / GiB for p in phases]
    ax_m.barh(range(len(phases)), values, left=left, label=label, color=colour)
    left = [a + b for a, b in zip(left, values)]
  ax_m.axvline(est.memory_bytes_per_device / GiB, color="k", linestyle="--", label="device memory")
  ax_m.set_yticks(range(len(phases)), [p.name for p in phases])
  ax_m.invert_yaxis()
  ax_m.set_xlabel("GiB per device")
  ax_m.set_title("memory per device (analytic)")
  # Beside the bars, not over them: long rollouts fill the plot's width.
  ax_m.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
