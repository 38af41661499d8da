"""`estimate --fit` results as the `--config` flags that make them.

`analysis.fit` returns what a setting changes as config paths and values;
writing flags is the command line's business.
"""

from __future__ import annotations


def render(changes: dict, devices: int) -> list[str]:
  """`--config` flags that make `changes` (a FitResult's), in config order."""
  flags_ = []
  if "mesh.spatial" in changes:
    flags_.append(
        f"--config=fiddler:devices(n={devices},per_device_batch="
        f"{changes['per_device_batch']},spatial={changes['mesh.spatial']})"
    )
  elif "per_device_batch" in changes:
    flags_.append(
        f"--config=fiddler:devices(n={devices},per_device_batch=" f"{changes['per_device_batch']})"
    )
  flags_ += [
      f"--config=set:{path}={value!r}"
      for path, value in changes.items()
      if path not in ("per_device_batch", "mesh.spatial")
  ]
  return flags_
