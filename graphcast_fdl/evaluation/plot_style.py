"""Units and colour maps of the fields our figures draw.

Values are stored in SI units (ERA5's); figures show the unit people read:
mean sea-level pressure in hPa rather than Pa. Fields whose sign matters
(winds, vertical velocity) get a diverging map centred on 0.
"""

from __future__ import annotations

import numpy as np

# name -> (unit shown, factor from the stored SI value to it).
UNITS = {
    "geopotential": ("m²/s²", 1.0),
    "temperature": ("K", 1.0),
    "2m_temperature": ("K", 1.0),
    "mean_sea_level_pressure": ("hPa", 0.01),
    "10m_u_component_of_wind": ("m/s", 1.0),
    "10m_v_component_of_wind": ("m/s", 1.0),
    "u_component_of_wind": ("m/s", 1.0),
    "v_component_of_wind": ("m/s", 1.0),
    "vertical_velocity": ("Pa/s", 1.0),
    "specific_humidity": ("kg/kg", 1.0),
    "total_precipitation_6hr": ("mm", 1000.0),
}
SIGNED = frozenset(
    {
        "10m_u_component_of_wind",
        "10m_v_component_of_wind",
        "u_component_of_wind",
        "v_component_of_wind",
        "vertical_velocity",
    }
)
SEQUENTIAL_MAP = "viridis"
DIVERGING_MAP = "RdBu_r"


def unit(name: str) -> str:
  return UNITS.get(name, ("", 1.0))[0]


def to_display(name: str, values):
  """Stored SI values in the unit `unit(name)` names."""
  return np.asarray(values) * UNITS.get(name, ("", 1.0))[1]


def label(text: str, name: str) -> str:
  """'text (unit)', or `text` for a field without a known unit."""
  u = unit(name)
  return f"{text} ({u})" if u else text


def colour_range(name: str, values) -> dict:
  """pcolormesh keywords: a map and limits (symmetric about 0 if signed)."""
  lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
  if name in SIGNED:
    bound = max(abs(lo), abs(hi)) or 1.0
    return {"cmap": DIVERGING_MAP, "vmin": -bound, "vmax": bound}
  return {"cmap": SEQUENTIAL_MAP, "vmin": lo, "vmax": hi}


def error_range(values) -> dict:
  """pcolormesh keywords of a forecast-minus-truth map: diverging, centred."""
  bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
  return {"cmap": DIVERGING_MAP, "vmin": -(bound or 1.0), "vmax": bound or 1.0}
