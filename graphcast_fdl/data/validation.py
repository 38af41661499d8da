"""Checks that stop bad data before it reaches a training step.

Each mistake a new user makes with a real store (a grid stored the other way
round, values in other units, fill values left unmasked, a variable that never
changes, times out of order) otherwise gives a run whose every step is
non-finite, or worse, a run that trains on mirrored or shifted fields without
a complaint. Each check here either fixes the data on the way in (units with a
known conversion) or raises one `DataError` line naming the variable,
coordinate, time or file.
"""

from __future__ import annotations

import re

import numpy as np

from graphcast_fdl import task as task_lib
from graphcast_fdl.data.frames import DataError

# |value| above this is a fill value: netCDF's default float fill is 9.97e36;
# no ERA5 field comes near (accumulated TOA radiation is ~2e7 J m-2).
FILL_THRESHOLD = 1e20

G = 9.80665  # m s-2: geopotential = G * geopotential height (WMO standard)

# Expected units per variable: the stored spelling and {alias: (scale, offset)}
# that converts to it (converted = stored * scale + offset). Aliases are
# compared after `_normalise_units`. A variable without a `units` attribute is
# taken as stated here (the synthetic and published example data have none).
_KELVIN = (
    "K",
    {
        "k": (1, 0),
        "kelvin": (1, 0),
        "degk": (1, 0),
        "degreesk": (1, 0),
        "degc": (1, 273.15),
        "c": (1, 273.15),
        "°c": (1, 273.15),
        "celsius": (1, 273.15),
        "degreesc": (1, 273.15),
        "degreec": (1, 273.15),
        "degreecelsius": (1, 273.15),
        "degreescelsius": (1, 273.15),
    },
)
_GEOPOTENTIAL = (
    "m**2 s**-2",
    {
        "m2s-2": (1, 0),
        "m2/s2": (1, 0),
        "m": (G, 0),
        "gpm": (G, 0),
        "meters": (G, 0),
        "metres": (G, 0),
    },
)
_PASCAL = (
    "Pa",
    {
        "pa": (1, 0),
        "pascal": (1, 0),
        "pascals": (1, 0),
        "hpa": (100, 0),
        "mb": (100, 0),
        "mbar": (100, 0),
        "millibar": (100, 0),
        "millibars": (100, 0),
    },
)
_SPEED = ("m s**-1", {"ms-1": (1, 0), "m/s": (1, 0)})
EXPECTED_UNITS = {
    "temperature": _KELVIN,
    "2m_temperature": _KELVIN,
    "geopotential": _GEOPOTENTIAL,
    "geopotential_at_surface": _GEOPOTENTIAL,
    "mean_sea_level_pressure": _PASCAL,
    "u_component_of_wind": _SPEED,
    "v_component_of_wind": _SPEED,
    "10m_u_component_of_wind": _SPEED,
    "10m_v_component_of_wind": _SPEED,
    "vertical_velocity": (
        "Pa s**-1",
        {"pas-1": (1, 0), "pa/s": (1, 0), "hpas-1": (100, 0), "hpa/s": (100, 0)},
    ),
    "specific_humidity": (
        "kg kg**-1",
        {
            "kgkg-1": (1, 0),
            "kg/kg": (1, 0),
            "1": (1, 0),
            "": (1, 0),
            "dimensionless": (1, 0),
            "gkg-1": (1e-3, 0),
            "g/kg": (1e-3, 0),
        },
    ),
    "total_precipitation_6hr": (
        "m",
        {
            "m": (1, 0),
            "meters": (1, 0),
            "metres": (1, 0),
            "mm": (1e-3, 0),
            "kgm-2": (1e-3, 0),
            "kg/m2": (1e-3, 0),
        },
    ),
    "toa_incident_solar_radiation": ("J m**-2", {"jm-2": (1, 0), "j/m2": (1, 0)}),
}


def _normalise_units(units: str) -> str:
  """'m**2 s**-2', 'm^2 s^-2', 'm2.s-2' -> 'm2s-2'; lower case, no spaces."""
  return re.sub(r"[\s.*^_]", "", str(units).lower())


def unit_conversion(name: str, units: str | None, source: str) -> tuple[float, float]:
  """(scale, offset) turning `name` stored in `units` into the expected units.

  Raises:
    DataError: the units contradict the variable and no conversion is known.
  """
  if units is None or name not in EXPECTED_UNITS:
    return 1.0, 0.0
  expected, aliases = EXPECTED_UNITS[name]
  key = _normalise_units(units)
  if key not in aliases:
    raise DataError(
        f"{name} in {source} has units {units!r}: expected {expected!r} "
        f"(convertible: {sorted(a for a, c in aliases.items() if c != (1, 0))})"
    )
  scale, offset = aliases[key]
  return float(scale), float(offset)


def check_values(name: str, values: np.ndarray, levels=None, when=None, source: str = "") -> None:
  """Raises a DataError naming the first NaN, Inf or unmasked fill value.

  Args:
    name: variable name, for the message.
    values: [level, lat, lon] or [lat, lon] array.
    levels: [level] hPa of a 3-D `values` (named in the message).
    when: the frame's datetime (None for statics).
    source: file, store or split, for the message.
  """
  # One fast pass when all is well: max/min propagate NaN and see Inf/fill.
  if values.size == 0 or (values.max() < FILL_THRESHOLD and values.min() > -FILL_THRESHOLD):
    return
  nan, inf = np.isnan(values), np.isinf(values)
  if nan.any():
    bad, kind = nan, "NaN"
  elif inf.any():
    bad, kind = inf, "Inf"
  else:
    bad = np.abs(values) >= FILL_THRESHOLD
    kind = (
        f"fill value {values[bad].flat[0]:.3g} (unmasked: declare it as "
        "_FillValue, or replace it)"
    )
  where = ""
  if values.ndim == 3:
    index = int(np.flatnonzero(bad.any(axis=(1, 2)))[0])
    where = f" level {int(levels[index])}" if levels is not None else f" level index {index}"
  if when is not None:
    where += f" at {when}"
  raise DataError(f"{kind} in {name}{where} ({source})")


def check_times(times: np.ndarray, segment_starts=()) -> None:
  """Strictly increasing times one model step apart; names a duplicate, a step back or a gap."""
  steps = np.diff(times)
  bad = [i for i in np.flatnonzero(steps != task_lib.TIME_STEP) if i + 1 not in segment_starts]
  if not bad:
    return
  # Order problems first: a step back also leaves gaps, which would mislead.
  for i in bad:
    if steps[i] == np.timedelta64(0):
      raise DataError(f"duplicate time {times[i]} (positions {i} and {i + 1})")
    if steps[i] < np.timedelta64(0):
      raise DataError(
          f"times go backwards: {times[i]} is followed by {times[i + 1]} "
          "(sort the store by time)"
      )
  i = bad[0]
  raise DataError(
      f"time gap: {times[i]} is followed by {times[i + 1]} "
      f"({task_lib.TIME_STEP_HOURS}-hourly steps expected)"
  )


def check_coords(name: str, values: np.ndarray, expected: np.ndarray, resolution: float) -> None:
  """Coordinate values on the model's grid, not just the right count.

  A grid of cell centres (lon 5..355 at 10 deg) has the right size but every
  point half a cell away: it must be regridded, not relabelled.
  """
  values = np.asarray(values, np.float64)
  if len(values) != len(expected) or not np.allclose(values, expected, atol=1e-3 * resolution):
    raise DataError(
        f"{name} coordinate runs {values[0]:g}..{values[-1]:g} deg: the "
        f"{resolution:g} deg grid needs {float(expected[0]):g}..{float(expected[-1]):g} "
        "(cell-centre grids need regridding)"
    )


def check_stats(stats, source: str = "", names=None) -> None:
  """Zero standard deviations (a constant variable) named before training.

  Normalising by a zero stddev makes every input or residual target
  non-finite, so every step would be skipped with no cause named.

  Args:
    stats: a `NormalizationStats`.
    source: where the statistics come from, for the message.
    names: the variables to check (None: all).
  """
  for field in ("stddev", "diffs_stddev"):
    dataset = getattr(stats, field)
    for name in dataset.data_vars:
      if names is not None and name not in names:
        continue
      values = np.atleast_1d(np.asarray(dataset[name].values))
      zero = np.flatnonzero(~(values > 0))
      if zero.size:
        level = (
            f" level {int(dataset.level.values[zero[0]])}" if "level" in dataset[name].dims else ""
        )
        what = "constant" if field == "stddev" else "constant in time"
        raise DataError(
            f"{name}{level} is {what} ({field} {values[zero[0]]:g}"
            f"{' in ' + source if source else ''}): it cannot be "
            "normalised; remove it from the task or fix the data"
        )
