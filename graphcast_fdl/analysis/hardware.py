"""Accelerators the estimator knows: peak rates, memory, and their sources.

Peaks are the vendors' dense (no sparsity) figures. JAX's default matmul
precision runs float32 matmuls as single bf16 passes on TPU and as TF32 on
A100/H100/H200, so "float32" lists those rates. Memory sizes are what a
program can address per device, before the runtime's own reservation.
"""

from __future__ import annotations

import dataclasses
import functools
import os

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Hardware:
  """One accelerator (per chip / per GPU / the whole host for a CPU).

  Attributes:
    name: key used by `--hardware`.
    family: "tpu", "gpu" or "cpu"; one efficiency factor per family.
    peak_flops: FLOP/s by compute dtype.
    memory_bandwidth: bytes/s between device memory and compute.
    memory_bytes: device memory per chip.
    interconnect_bandwidth: bytes/s one chip sends (one way, all its links
      together) over the chip interconnect (TPU ICI, NVLink): prices the
      gradient all-reduce and the halo exchange of a space-split example.
    source: where the numbers come from.
    devices_per_host: devices one host feeds (its loader's share of a step).
    upcasts_bfloat16: the model runs bfloat16 matmuls in float32 here
      (`model.layers.dot_f32` on CPU), so a bfloat16 step takes the time and
      memory of a float32 one (measured on this CPU:
      benchmarks/estimator_vs_measured.py, and XLA's memory figures).
    retention: what this backend's compiler keeps for the backward pass, a
      `cost_model.RETENTION` key: "fused" for XLA:TPU (read off its
      compiled programs' buffers, benchmarks/xla_tpu_memory.py), "unfused"
      for XLA:CPU and XLA:GPU (their compiled peaks: benchmarks/RESULTS.md).
    host_link_bandwidth: bytes/s one way between a device and its host (PCIe):
      what the step's batch and the rollout's host-memory frames cross; 0
      where no figure is given (not priced).
  """

  name: str
  family: str
  peak_flops: dict
  memory_bandwidth: float
  memory_bytes: float
  interconnect_bandwidth: float
  source: str
  devices_per_host: int = 1
  upcasts_bfloat16: bool = False
  retention: str = "unfused"
  host_link_bandwidth: float = 0.0

  def peak(self, precision: str) -> float:
    return self.peak_flops[precision]


# Chips per host of multi-host Cloud TPU slices (system architecture pages),
# GPUs per node of 8-GPU HGX/DGX servers.
TPU_CHIPS_PER_HOST = 4
GPUS_PER_NODE = 8


def _tpu(name, bf16, hbm_gbs, mem_gib, ici_gbs, source):
  return Hardware(
      name,
      "tpu",
      {"bfloat16": bf16, "float32": bf16},
      hbm_gbs * 1e9,
      mem_gib * GiB,
      ici_gbs * 1e9,
      source + f"; {TPU_CHIPS_PER_HOST} chips per host",
      devices_per_host=TPU_CHIPS_PER_HOST,
      retention="fused",
  )


def _gpu(name, bf16, tf32, hbm_gbs, mem_bytes, nvlink_gbs, source):
  return Hardware(
      name,
      "gpu",
      {"bfloat16": bf16, "float32": tf32},
      hbm_gbs * 1e9,
      mem_bytes,
      nvlink_gbs * 1e9,
      source + f"; {GPUS_PER_NODE} GPUs per node",
      devices_per_host=GPUS_PER_NODE,
  )


_GCP = "Google Cloud TPU docs, system architecture page for "
_NV = "NVIDIA datasheet: "
# Interconnect, one way per chip (half the vendors' bidirectional figures):
#   TPU v4: ICI 2400 Gbps per chip (6 links; Cloud TPU v4 page) = 300 GB/s;
#   TPU v5e: 400 GB/s bidirectional ICI per chip (Cloud TPU v5e page) = 200;
#   TPU v5p: 1200 GB/s bidirectional (4800 Gbps one way; v5p page) = 600;
#   TPU v6e: 800 GB/s bidirectional ICI per chip (v6e page) = 400;
#   A100 SXM4: NVLink 3, 600 GB/s bidirectional (12 links) = 300;
#   H100 / H200 SXM: NVLink 4, 900 GB/s bidirectional (18 links) = 450.
# Host link, one way per chip: TPU v4 has x16 PCIe Gen3 (Cloud TPU v4 page;
# summarised at glennklockwood.com/garden/tpuv4): 16 lanes x 8 GT/s x 128/130
# bit = 15.75 GB/s. No figure for the other chips here (not priced).
V4_PCIE = 16 * 8e9 * 128 / 130 / 8
TABLE = {
    "tpu_v4": dataclasses.replace(
        _tpu(
            "tpu_v4",
            275e12,
            1200,
            32,
            300,
            _GCP + "TPU v4 (275 TFLOP/s bf16, 32 GiB HBM2 at 1200 GB/s, x16 PCIe Gen3 to the host)",
        ),
        host_link_bandwidth=V4_PCIE,
    ),
    "tpu_v5e": _tpu(
        "tpu_v5e",
        197e12,
        819,
        16,
        200,
        _GCP + "TPU v5e (197 TFLOP/s bf16, 16 GiB HBM2 at 819 GB/s)",
    ),
    "tpu_v5p": _tpu(
        "tpu_v5p",
        459e12,
        2765,
        95,
        600,
        _GCP + "TPU v5p (459 TFLOP/s bf16, 95 GiB HBM2e at 2765 GB/s)",
    ),
    "tpu_v6e": _tpu(
        "tpu_v6e",
        918e12,
        1640,
        32,
        400,
        _GCP + "TPU v6e Trillium (918 TFLOP/s bf16, 32 GiB HBM at 1640 GB/s)",
    ),
    "a100_40gb": _gpu(
        "a100_40gb",
        312e12,
        156e12,
        1555,
        40 * GiB,
        300,
        _NV + "A100 Tensor Core GPU, SXM4 40GB (312 TFLOP/s bf16, " "156 TF32, 1555 GB/s HBM2)",
    ),
    "a100_80gb": _gpu(
        "a100_80gb",
        312e12,
        156e12,
        2039,
        80 * GiB,
        300,
        _NV + "A100 Tensor Core GPU, SXM4 80GB (312 TFLOP/s bf16, " "156 TF32, 2039 GB/s HBM2e)",
    ),
    "h100": _gpu(
        "h100",
        989e12,
        494.7e12,
        3350,
        80 * GiB,
        450,
        _NV + "H100 Tensor Core GPU, SXM5 80GB (989 TFLOP/s bf16 dense, "
        "495 TF32, 3.35 TB/s HBM3)",
    ),
    "h200": _gpu(
        "h200",
        989e12,
        494.7e12,
        4800,
        141e9,
        450,
        _NV + "H200 Tensor Core GPU, SXM 141GB (989 TFLOP/s bf16 dense, "
        "495 TF32, 4.8 TB/s HBM3e)",
    ),
}

# AVX-512 cores with two FMA units: 2 units x 16 f32 lanes x 2 FLOP = 64/cycle.
CPU_FLOPS_PER_CYCLE = {"avx512f": 64, "avx2": 32}
CPU_BANDWIDTH_PER_CORE = 10e9  # bytes/s; a typical cloud vCPU share (assumed)


@functools.cache
def this_cpu() -> Hardware:
  """The host CPU, from /proc/cpuinfo and /proc/meminfo (Linux)."""
  cores = os.cpu_count() or 1
  model, ghz, flags, mem = "unknown CPU", 2.0, set(), 8 * GiB
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
          model = value.strip()
          if "@" in model and "GHz" in model:
            ghz = float(model.split("@")[1].strip().rstrip("GHz"))
        elif key == "flags" and not flags:
          flags = set(value.split())
    with open("/proc/meminfo") as f:
      mem = int(f.readline().split()[1]) * 1024
  except (OSError, ValueError):
    pass
  per_cycle = next((v for k, v in CPU_FLOPS_PER_CYCLE.items() if k in flags), 16)
  peak = cores * ghz * 1e9 * per_cycle
  return Hardware(
      "cpu",
      "cpu",
      {"float32": peak, "bfloat16": peak},
      cores * CPU_BANDWIDTH_PER_CORE,
      mem,
      0.0,
      f"/proc/cpuinfo: {cores} x {model}, {per_cycle} FLOP/cycle "
      f"(no native bf16 matmul); bandwidth assumed "
      f"{CPU_BANDWIDTH_PER_CORE / 1e9:.0f} GB/s per core; /proc/meminfo",
      upcasts_bfloat16=True,
  )


def get(name: str) -> Hardware:
  """The named hardware; ValueError naming the choices if unknown."""
  if name == "cpu":
    return this_cpu()
  if name not in TABLE:
    raise ValueError(f"--hardware={name!r}: choose from {', '.join(names())}")
  return TABLE[name]


# jax `device_kind` substrings (lower case) -> table key, most specific first.
_DEVICE_KINDS = (
    ("tpu v4", "tpu_v4"),
    ("tpu v5 lite", "tpu_v5e"),
    ("tpu v5e", "tpu_v5e"),
    ("tpu v5p", "tpu_v5p"),
    ("tpu v5", "tpu_v5p"),
    ("tpu v6", "tpu_v6e"),
    ("h200", "h200"),
    ("h100", "h100"),
    ("a100-sxm4-80gb", "a100_80gb"),
    ("a100 80gb", "a100_80gb"),
    ("a100", "a100_40gb"),
)


def detect(platform: str, device_kind: str) -> str | None:
  """The table key of a JAX device (its `platform` and `device_kind`), or
  None when the table does not know it."""
  if platform == "cpu":
    return "cpu"
  kind = device_kind.lower()
  return next((key for part, key in _DEVICE_KINDS if part in kind), None)


def names() -> list[str]:
  return list(TABLE) + ["cpu"]
