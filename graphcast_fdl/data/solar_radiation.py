"""Top-of-atmosphere incident solar radiation, compatible with ERA5 `tisr`.

ERA5's `toa_incident_solar_radiation` is the solar flux at the top of the
atmosphere integrated over the hour that ends at each timestamp (J/m^2). Data
sources that lack it (operational analyses, synthetic data, future forcings of
a forecast) compute it here with the same orbital formulas (ECMWF IFS / GEM
`fctast`) and yearly total solar irradiance table as the published GraphCast,
integrated with the trapezoidal rule.

The published code evaluates in float32 (JAX's default), where the time in days
since J2000 is rounded to ~1 minute; `dtype=np.float32` reproduces its values,
float64 is the more exact integral.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86400.0
J2000_EPOCH = np.datetime64("2000-01-01T12:00:00", "s")
JULIAN_YEAR_DAYS = 365.25
REFERENCE_TSI = 1361.0  # W/m^2, used where no yearly table applies.

# Yearly mean total solar irradiance (W/m^2) hard-coded in IFS cycle 41r2 (the
# one ERA5 ran), scaled by 0.9965 to recent observations. Years 1951-1995 are
# listed; from 1996 a 13-year solar cycle repeats up to 2034.
_TSI_1951_1995 = (
    1365.7765,
    1365.7676,
    1365.6284,
    1365.6564,
    1365.7773,
    1366.3109,
    1366.6681,
    1366.6328,
    1366.3828,
    1366.2767,
    1365.9199,
    1365.7484,
    1365.6963,
    1365.6976,
    1365.7341,
    1365.9178,
    1366.1143,
    1366.1644,
    1366.2476,
    1366.2426,
    1365.9580,
    1366.0525,
    1365.7991,
    1365.7271,
    1365.5345,
    1365.6453,
    1365.8331,
    1366.2747,
    1366.6348,
    1366.6482,
    1366.6951,
    1366.2859,
    1366.1992,
    1365.8103,
    1365.6416,
    1365.6379,
    1365.7899,
    1366.0826,
    1366.6479,
    1366.5533,
    1366.4457,
    1366.3021,
    1366.0286,
    1365.7971,
    1365.6996,
)
_TSI_CYCLE_1996 = (
    1365.6121,
    1365.7399,
    1366.1021,
    1366.3851,
    1366.6836,
    1366.6022,
    1366.6807,
    1366.2300,
    1366.0480,
    1365.8545,
    1365.8107,
    1365.7240,
    1365.6918,
)
ERA5_TSI_YEARS = np.arange(1951.5, 2035.5, 1.0)
ERA5_TSI = 0.9965 * np.array(_TSI_1951_1995 + 3 * _TSI_CYCLE_1996)


def _as_datetime64(timestamps) -> np.ndarray:
  return np.asarray(pd.DatetimeIndex(np.atleast_1d(timestamps)).to_numpy().astype("datetime64[s]"))


def total_solar_irradiance(timestamps) -> np.ndarray:
  """ERA5's TSI (W/m^2) at each timestamp, linear in fractional year. [T]."""
  index = pd.DatetimeIndex(_as_datetime64(timestamps))
  day_fraction = (index - index.normalize()) / pd.Timedelta(days=1)
  year_length = 365 + index.is_leap_year.astype(np.float64)
  fractional_year = index.year + (index.dayofyear - 1 + day_fraction) / year_length
  return np.interp(np.asarray(fractional_year, np.float64), ERA5_TSI_YEARS, ERA5_TSI)


def j2000_days(timestamps) -> np.ndarray:
  """Days (float64) since the J2000 epoch, 2000-01-01 12:00. [T]."""
  seconds = (_as_datetime64(timestamps) - J2000_EPOCH).astype(np.int64)
  return seconds / SECONDS_PER_DAY


def _flux(days: np.ndarray, sin_lat, cos_lat, lon_rad, tsi, dtype) -> np.ndarray:
  """Instantaneous TOA flux (W/m^2); `days` broadcasts against the grid."""
  days = days.astype(dtype)
  theta = days / dtype(JULIAN_YEAR_DAYS)
  rotational_phase = days % dtype(1.0)
  rel = dtype(1.7535) + dtype(6.283076) * theta
  rem = dtype(6.240041) + dtype(6.283020) * theta
  rlls = dtype(4.8951) + dtype(6.283076) * theta
  # Ecliptic longitude of the Sun.
  rllls = (
      dtype(4.8952)
      + dtype(6.283320) * theta
      - dtype(0.0075) * np.sin(rel)
      - dtype(0.0326) * np.cos(rel)
      - dtype(0.0003) * np.sin(2 * rel)
      + dtype(0.0002) * np.cos(2 * rel)
  )
  sin_decl = np.sin(dtype(0.409093)) * np.sin(rllls)  # obliquity 23.4393 deg
  cos_decl = np.sqrt(dtype(1.0) - sin_decl**2)
  sin_rem = np.sin(rem)
  eq_of_time_s = (
      dtype(591.8) * np.sin(2 * rlls)
      - dtype(459.4) * sin_rem
      + dtype(39.5) * sin_rem * np.cos(2 * rlls)
      - dtype(12.7) * np.sin(4 * rlls)
      - dtype(4.8) * np.sin(2 * rem)
  )
  distance_au = dtype(1.0001) - dtype(0.0163) * np.sin(rel) + dtype(0.0037) * np.cos(rel)
  solar_time = rotational_phase + eq_of_time_s / dtype(SECONDS_PER_DAY)
  hour_angle = dtype(2 * np.pi) * solar_time + lon_rad
  sin_altitude = cos_lat * cos_decl * np.cos(hour_angle) + sin_lat * sin_decl
  return tsi * (1 / distance_au) ** 2 * np.maximum(sin_altitude, 0)


def toa_incident_solar_radiation(
    timestamps: Sequence,
    lat: np.ndarray,
    lon: np.ndarray,
    integration_hours: float = 1.0,
    num_bins: int = 360,
    dtype=np.float32,
) -> np.ndarray:
  """Solar energy reaching the TOA in the `integration_hours` before each time.

  Args:
    timestamps: [T] datetimes (anything pandas understands).
    lat: [H] latitudes in degrees.
    lon: [W] longitudes in degrees.
    integration_hours: 1 matches ERA5.
    num_bins: trapezoid bins over the period; 360 matches the published code,
      fewer (e.g. 24) is ~15x cheaper and good to ~1e-3 where data is synthetic.
    dtype: np.float32 reproduces the published values; np.float64 is exact.

  Returns:
    [T, H, W] float32 J/m^2.
  """
  dtype = np.dtype(dtype).type
  lat_rad = np.deg2rad(np.asarray(lat, np.float64)).astype(dtype)[:, None, None]
  lon_rad = np.deg2rad(np.asarray(lon, np.float64)).astype(dtype)[None, :, None]
  sin_lat, cos_lat = np.sin(lat_rad), np.cos(lat_rad)
  # Offsets (days) of the integration points, ending at each timestamp.
  period_days = integration_hours / 24.0
  offsets = np.linspace(-period_days, 0.0, num_bins + 1).astype(dtype)
  bin_seconds = integration_hours * 3600.0 / num_bins
  days = j2000_days(timestamps).astype(dtype)
  tsi = total_solar_irradiance(timestamps).astype(dtype)
  out = np.empty((len(days), lat_rad.shape[0], lon_rad.shape[1]), np.float32)
  for t in range(len(days)):
    flux = _flux(days[t] + offsets, sin_lat, cos_lat, lon_rad, tsi[t], dtype)
    integral = (flux[..., 1:] + flux[..., :-1]).sum(axis=-1) * dtype(bin_seconds / 2)
    out[t] = integral
  return out
