"""Efficiency factors per hardware family, each fitted to one figure.

The roofline (max of FLOPs / peak and bytes / bandwidth) is what a perfect
program would take; real steps are slower by a factor that depends mostly on
the compiler and chip family. Each family gets one factor, fitted to exactly
one figure; every other published figure is then a prediction
(`benchmarks/estimator_vs_published.py` prints both).

Refit after changing the cost model with
  python benchmarks/estimator_vs_published.py --refit   # TPU
  python benchmarks/estimator_vs_measured.py --refit    # this CPU
which print the new constants; `tests/test_estimator.py` checks that the
fitted figure is reproduced exactly by the constants below.
"""

from __future__ import annotations

import dataclasses

from graphcast_fdl.model.config import RematConfig

DAY = 86_400.0


@dataclasses.dataclass(frozen=True)
class PublishedFigure:
  """A published (or measured) wall-clock figure for some phases.

  Attributes:
    name: short label.
    config: experiments registry name the figure is about.
    phases: phase names it covers (empty: the whole schedule).
    seconds: the wall-clock figure.
    hardware: hardware table key it was measured on.
    num_devices: devices it ran on.
    source: where the figure comes from.
    fit_memory: price the config after `fiddler:fit_memory` (each phase with
      the fastest remat policy that fits the device), not as configured.
  """

  name: str
  config: str
  phases: tuple[str, ...]
  seconds: float
  hardware: str
  num_devices: int
  source: str
  fit_memory: bool = False


_ANNEALING = tuple(f"rollout_{k}" for k in range(2, 13))
_GITHUB = (
    "DeepMind's answer in github.com/google-deepmind/weathernext/issues/77"
    " (the graphcast repository, renamed): 'about two weeks' of 1-step "
    "training + 'another two weeks' of 2-12 step annealing on 32 TPU v4"
)
_GITHUB_PHASE3 = (
    "DeepMind's answer in github.com/google-deepmind/weathernext/"
    "issues/99: 'out of the approximately 4 weeks ... phase 3 "
    "was about 11 days'"
)
PUBLISHED = (
    PublishedFigure(
        "graphcast 1-step", "graphcast", ("single_step",), 14 * DAY, "tpu_v4", 32, _GITHUB
    ),
    PublishedFigure(
        "graphcast 2-12 step annealing", "graphcast", _ANNEALING, 14 * DAY, "tpu_v4", 32, _GITHUB
    ),
    PublishedFigure(
        "graphcast annealing, later answer",
        "graphcast",
        _ANNEALING,
        11 * DAY,
        "tpu_v4",
        32,
        _GITHUB_PHASE3,
    ),
    PublishedFigure(
        "graphcast annealing, later answer, fit_memory",
        "graphcast",
        _ANNEALING,
        11 * DAY,
        "tpu_v4",
        32,
        _GITHUB_PHASE3,
        fit_memory=True,
    ),
    PublishedFigure(
        "graphcast_operational extra 1-step fine-tune",
        "graphcast_operational",
        ("finetune_hres",),
        1 * DAY,
        "tpu_v4",
        32,
        _GITHUB + "; 'an extra day'",
    ),
    PublishedFigure(
        "graphcast_operational fine-tune, fit_memory",
        "graphcast_operational",
        ("finetune_hres",),
        1 * DAY,
        "tpu_v4",
        32,
        _GITHUB + "; 'an extra day'",
        fit_memory=True,
    ),
    PublishedFigure(
        "graphcast_small (1 deg) whole schedule",
        "graphcast_small",
        (),
        1.5 * DAY,
        "tpu_v4",
        32,
        _GITHUB + "; 'about 1.5 days'",
    ),
)
# The one figure the TPU factor is fitted to: the largest phase, and the one
# the paper's "about 4 weeks" is dominated by.
TPU_FIT = PUBLISHED[0]

# This CPU: our own train step (loss + grad + clipped AdamW) of the `demo`
# config (4 deg / M3 / latent 32 / 4 steps, float32, batch 2), median of 15,
# measured with `python benchmarks/estimator_vs_measured.py --refit` on the
# 2-core development machine on 2026-12-01.
CPU_FIT_STEP_SECONDS = 0.0903
# The published implementation's train step at 4 deg / M3 / latent 32 /
# 4 steps, float32, batch 1, on a machine of the same type (golden
# c_4deg_m3_l32_f32/report.json): a comparison, not a fit. Ours at batch 2
# takes about what it takes at batch 1.
PUBLISHED_CODE_CPU_STEP_SECONDS = 0.0776

# Roofline / measured step time. Refit with `--refit` (see module docstring).
EFFICIENCY = {"tpu": 0.31003981366042227, "cpu": 0.552762322363451}
# No published GPU figure exists for GraphCast training: GPUs use the TPU
# factor (XLA on both; an assumption, stated in every GPU estimate).
EFFICIENCY_SOURCE = {
    "tpu": f"fitted to '{TPU_FIT.name}' ({TPU_FIT.seconds / DAY:.0f} days)",
    "cpu": (
        f"fitted to our demo train step measured here "
        f"({CPU_FIT_STEP_SECONDS} s, benchmarks/estimator_vs_measured.py)"
    ),
    "gpu": "no published GPU figure: the TPU factor, assumed",
}


@dataclasses.dataclass(frozen=True)
class CompiledPeak:
  """XLA:TPU's per-chip peak of our train step (32 x TPU v4, one example per
  chip), compiled here without a TPU (`benchmarks/xla_tpu_memory.py`).

  Attributes:
    config: experiments registry name.
    rollout_steps: the program's rollout length.
    remat: its remat policy (None: the config's; the 0.25 deg points name
      theirs, compiled before `config:graphcast` took the rollout knobs).
    peak_gib: arguments + temporaries + outputs - aliases; for a program
      that does not fit, the compiler's required temporaries + arguments.
    source: which compile.
  """

  config: str
  rollout_steps: int
  remat: RematConfig | None
  peak_gib: float
  source: str


_PUBLISHED_REMAT = RematConfig(rollout_step=True, processor_every_k=3, encoder_decoder=True)
_BR = "benchmarks/RESULTS.md, XLA:TPU per-chip memory"
# What the analytic model's "fused" retention is checked against
# (tests/test_estimator.py; within 20%).
XLA_TPU_PEAKS = (
    CompiledPeak("graphcast_small", 1, None, 9.09, _BR + " (2026-12-02)"),
    CompiledPeak("graphcast_small", 4, None, 10.21, _BR),
    CompiledPeak("graphcast", 1, _PUBLISHED_REMAT, 23.3, _BR + " (1 chip, issue #15)"),
    CompiledPeak("graphcast", 2, _PUBLISHED_REMAT, 38.35, _BR),
    CompiledPeak("graphcast", 12, _PUBLISHED_REMAT, 78.15, _BR + " (required: RESOURCE_EXHAUSTED)"),
    CompiledPeak(
        "graphcast",
        12,
        RematConfig(
            rollout_step=True,
            processor_every_k=1,
            encoder_decoder=True,
            rollout_segment=4,
            grid_block_size=131_072,
        ),
        72.01,
        _BR + " (required)",
    ),
    CompiledPeak(
        "graphcast",
        12,
        dataclasses.replace(_PUBLISHED_REMAT, grid_block_size=131_072),
        79.29,
        _BR + " (required)",
    ),
    CompiledPeak(
        "graphcast",
        12,
        dataclasses.replace(_PUBLISHED_REMAT, rollout_segment=4),
        69.35,
        _BR + " (required)",
    ),
    # `config:graphcast` as it stands (the four rollout knobs), session 7's
    # program: one rollout step at a time in the backward pass. Its earlier
    # programs (benchmarks/RESULTS.md) no longer exist.
    CompiledPeak("graphcast", 12, None, 29.13, _BR + " (2026-12-03, session 7)"),
    CompiledPeak("graphcast", 2, None, 27.97, _BR + " (2026-12-03, session 7)"),
)


@dataclasses.dataclass(frozen=True)
class CompiledCost:
  """XLA:TPU's figures for one train step of a config on 32 x TPU v4 (one
  example per chip), read off the optimised program (`hlo_loops` on its HLO
  text: loop bodies times their trips, so recomputation and the compiler's
  own rematerialisation are in): per chip and train step.

  Attributes:
    config: experiments registry name.
    rollout_steps: the program's rollout length.
    remat: its remat policy.
    flops: matmul FLOPs.
    bytes_accessed: HBM bytes (unfused instructions' operands and results).
    host_bytes: bytes copied between host memory and the chip in the program.
    source: which compile.
  """

  config: str
  rollout_steps: int
  remat: RematConfig
  flops: float
  bytes_accessed: float
  host_bytes: float
  source: str


# Per-step figures the XLA-priced column of benchmarks/estimator_vs_published.py
# uses where the on-disk cache lacks them (it is keyed by the source of the
# model, so every change to it would otherwise need hours of recompiling).
# Read with `benchmarks/estimator_vs_published.py --hlo` from programs compiled
# (up to buffer assignment, with --xla_dump_to) on 2026-12-02 at main a7697df.
_DUMP = "XLA:TPU optimised HLO, 32 x v4, hlo_loops (2026-12-02)"
_SMALL_REMAT = RematConfig(rollout_step=True)
XLA_TPU_COSTS: tuple[CompiledCost, ...] = (
    CompiledCost("graphcast_small", 1, _SMALL_REMAT, 8.007e12, 1.184e11, 0.0, _DUMP),
    CompiledCost("graphcast_small", 4, _SMALL_REMAT, 4.152e13, 6.133e11, 0.0, _DUMP),
    CompiledCost("graphcast_small", 12, _SMALL_REMAT, 1.237e14, 1.821e12, 0.0, _DUMP),
    CompiledCost("graphcast", 1, _PUBLISHED_REMAT, 9.098e13, 1.326e12, 0.0, _DUMP),
    CompiledCost("graphcast", 2, _PUBLISHED_REMAT, 2.377e14, 3.438e12, 0.0, _DUMP),
    # Needs 78 GiB: no v4 program, but its HLO shows what XLA recomputes
    # trying to fit it (1.61x the 1-step FLOPs per step, against 1.31x at 2).
    CompiledCost("graphcast", 12, _PUBLISHED_REMAT, 1.763e15, 2.357e13, 0.0, _DUMP),
    CompiledCost("graphcast_operational", 1, _PUBLISHED_REMAT, 8.959e13, 1.293e12, 0.0, _DUMP),
)


def compiled_cost(config: str, rollout_steps: int, remat: RematConfig) -> CompiledCost | None:
  """The recorded figures of `config`'s program of that rollout and policy.

  The rollout memory knobs (what a recomputed step keeps and where, where
  the targets and inputs wait) move data, not compute: a policy that
  differs only in them takes the recorded figures (an approximation: host copies are not
  in them)."""
  plain = remat.without_rollout_knobs()
  for c in XLA_TPU_COSTS:
    if (
        c.config == config
        and c.rollout_steps == rollout_steps
        and c.remat.without_rollout_knobs() == plain
    ):
      return c
  return None


# Roofline of the compiled program's own FLOPs and bytes (loop bodies times
# their trips) / the step time, fitted to the same one figure as the analytic
# factor, the 0.25 deg 1-step phase (`benchmarks/estimator_vs_published.py
# --refit`).
XLA_FIT = TPU_FIT
XLA_EFFICIENCY = {"tpu": 0.27412137851212337}


def efficiency(family: str) -> float:
  return EFFICIENCY.get(family, EFFICIENCY["tpu"])


def xla_efficiency(family: str) -> float:
  return XLA_EFFICIENCY.get(family, XLA_EFFICIENCY["tpu"])
