"""A cheap, learnable stand-in for the atmosphere, on any grid and level set.

Two anomaly fields (a barotropic and a baroclinic mode, smooth in latitude,
zonal wavenumbers 0..6) are carried eastward by a mid-latitude jet, each
latitude row shifted exactly in Fourier space, damped over ~8 days and
renewed by small smooth random forcing. Every GraphCast variable is then a
fixed function of the anomalies, an analytic climate (seasonal, by latitude
and pressure) and the TOA solar forcing:

* geopotential: hypsometric climate + mode amplitude x vertical profile;
* temperature: climate lapse rate + hydrostatic anomaly (d geopotential / d ln p);
* winds: a jet plus geostrophic winds of the anomaly; 10 m winds from 1000 hPa;
* vertical velocity: from the zonal gradient of the baroclinic mode;
* specific humidity: Clausius-Clapeyron-like in temperature, more in ascent;
* precipitation: ascent x moisture, accumulated over the previous 6 h;
* 2 m temperature: climate + anomaly + a diurnal cycle driven by TOA
  radiation and stronger over land; mean sea-level pressure from 1000 hPa.

Profiles are analytic in pressure, so surface fields do not depend on which
levels are written and any level set works. Six-hourly frames follow each
other by a known advection plus ~25 % new noise, so a model that learns the
advection beats persistence by a wide margin; its seasonal and diurnal parts
reward using the forcings and static fields.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from graphcast_fdl import task as task_lib
from graphcast_fdl.data import solar_radiation

EARTH_RADIUS = 6.371e6  # m
GRAVITY = 9.80665  # m/s^2
R_DRY = 287.0  # J/kg/K
F0 = 1e-4  # 1/s, Coriolis parameter for geostrophic winds
STEP_HOURS = task_lib.TIME_STEP_HOURS
MAX_WAVENUMBER = 6
NUM_LAT_MODES = 6
DAMPING_DAYS = 30.0
TOA_BINS = 24  # ~3e-5 of the peak from the 360-bin ERA5 integral; 15x cheaper.
_X_TOP = np.log(1000.0 / 100.0)  # ln(p0/p) where the baroclinic mode reverses


def _ln_ratio(levels):
  return np.log(1000.0 / np.asarray(levels, np.float64))


def _barotropic(x):  # geopotential profile and its d/d ln(p0/p)
  return 1.0 + 0.2 * x, 0.2 * np.ones_like(x)


def _baroclinic(x):
  phase = np.pi * x / _X_TOP / 2
  return np.cos(phase), -np.pi / _X_TOP / 2 * np.sin(phase)


def surface_climate_temperature(lat_rad, season):
  """[H] K: warm tropics, seasonal swing (season = +1 in northern summer)."""
  return 300.0 - 45.0 * np.sin(lat_rad) ** 2 + 12.0 * season * np.sin(lat_rad)


def climate_temperature(levels, lat_rad, season):
  """[L, H] K: a 6.5 K/km lapse rate below an isothermal stratosphere."""
  t_sfc = surface_climate_temperature(lat_rad, season)
  p = np.asarray(levels, np.float64)[:, None]
  return np.maximum(t_sfc * (p / 1000.0) ** 0.19, 216.65)


def climate_geopotential(levels, lat_rad, season):
  """[L, H] m^2/s^2: hypsometric integral of the climate temperature."""
  fine_p = np.geomspace(0.5, 1000.0, 400)
  t = climate_temperature(fine_p, lat_rad, season)
  dlnp = np.diff(np.log(fine_p))[:, None]
  # Integrate upward from 1000 hPa (where the height is ~100 m).
  layers = R_DRY * 0.5 * (t[1:] + t[:-1]) * dlnp
  z_fine = np.concatenate([np.cumsum(layers[::-1], 0)[::-1], np.zeros_like(t[:1])], 0)
  z_fine += GRAVITY * 100.0
  lnp = np.log(fine_p)
  out = np.empty((len(levels), len(lat_rad)))
  for j in range(len(lat_rad)):
    out[:, j] = np.interp(np.log(np.asarray(levels, np.float64)), lnp, z_fine[:, j])
  return out


def climate_wind(levels, lat_rad):
  """[L, H] m/s zonal wind: westerly jets near 40 deg, peak at 200 hPa."""
  lat_deg = np.rad2deg(lat_rad)
  p = np.asarray(levels, np.float64)[:, None]
  jet = np.exp(-(((np.abs(lat_deg) - 40.0) / 12.0) ** 2))
  vertical = 0.25 + np.exp(-np.log(p / 200.0) ** 2 / 1.2)
  trades = -6.0 * np.exp(-((lat_deg / 15.0) ** 2)) * (p / 1000.0)
  return 35.0 * jet * vertical + trades


def statics(lat, lon) -> dict[str, np.ndarray]:
  """Land-sea mask and surface geopotential [H, W], fixed for every seed."""
  lat_rad = np.deg2rad(np.asarray(lat, np.float64))[:, None]
  lon_rad = np.deg2rad(np.asarray(lon, np.float64))[None, :]
  rng = np.random.RandomState(1234)
  pattern = np.zeros((lat_rad.shape[0], lon_rad.shape[1]))
  for m in range(4):
    for n in range(4):
      a, b = rng.normal(size=2)
      pattern += (
          np.cos(lat_rad) ** min(m, 1)
          * np.cos(n * (lat_rad + np.pi / 2))
          * (a * np.cos(m * lon_rad) + b * np.sin(m * lon_rad))
      )
  land = 1.0 / (1.0 + np.exp(-6.0 * (pattern - 0.8)))
  hills = 0.5 + 0.5 * np.cos(lat_rad) * np.sin(3 * lon_rad + 2 * lat_rad)
  return {
      "land_sea_mask": land.astype(np.float32),
      "geopotential_at_surface": (GRAVITY * 2500.0 * land * hills**2).astype(np.float32),
  }


class _Modes:
  """Two anomaly fields as [H, M+1] complex zonal Fourier coefficients."""

  def __init__(self, lat_rad, num_lon, rng, steering_wind):
    self.num_lon = num_lon
    self.rng = rng
    m = np.arange(MAX_WAVENUMBER + 1)
    self.m = m
    cos_lat = np.maximum(np.cos(lat_rad), 0.05)
    # Basis in latitude per wavenumber [M+1, N, H]; zero at poles for m > 0.
    n = np.arange(NUM_LAT_MODES)
    self.basis = np.cos(lat_rad)[None, None, :] ** np.minimum(m, 2)[:, None, None] * np.cos(
        n[None, :, None] * (lat_rad[None, None, :] + np.pi / 2)
    )
    self.amplitude = 1.0 / (1.0 + (m / 6.0) ** 2)  # redder spectrum
    # Angular velocity of each row, per mode (the baroclinic one slower).
    omega = steering_wind / (EARTH_RADIUS * cos_lat)  # [H] rad/s
    dt = STEP_HOURS * 3600.0
    self.decay = np.exp(-STEP_HOURS / 24.0 / DAMPING_DAYS)
    self.rotation = [np.exp(-1j * m[None, :] * (f * omega * dt)[:, None]) for f in (1.0, 0.7)]
    self.state = [self._noise() for _ in range(2)]  # stationary start

  def _noise(self):
    coeffs = self.rng.normal(size=(MAX_WAVENUMBER + 1, NUM_LAT_MODES)) + 1j * self.rng.normal(
        size=(MAX_WAVENUMBER + 1, NUM_LAT_MODES)
    )
    coeffs[0] = coeffs[0].real
    rows = np.einsum("mn,mnh->hm", coeffs, self.basis) * self.amplitude[None, :]
    return rows / np.sqrt(NUM_LAT_MODES)

  def step(self):
    renew = np.sqrt(1 - self.decay**2)
    self.state = [
        s * rot * self.decay + renew * self._noise() for s, rot in zip(self.state, self.rotation)
    ]

  def grid(self, coeffs, derivative=False):
    """[H, W] field (or its d/d lon in 1/rad) from [H, M+1] coefficients."""
    full = np.zeros((coeffs.shape[0], self.num_lon // 2 + 1), complex)
    full[:, : coeffs.shape[1]] = coeffs * (1j * self.m if derivative else 1.0)
    return np.fft.irfft(full, n=self.num_lon, axis=-1) * self.num_lon / 2


def simulate(
    lat, lon, levels, start, num_frames: int, seed: int = 0
) -> Iterator[tuple[np.datetime64, dict[str, np.ndarray]]]:
  """Yields (datetime, {variable: [L, H, W] or [H, W] float32}) 6-hourly.

  Args:
    lat: [H] degrees, ascending. lon: [W] degrees in [0, 360).
    levels: pressure levels in hPa (any set, any order).
    start: datetime of the first frame.
    num_frames: frames to yield (a warm-up frame before is used internally).
    seed: random forcing seed; the same seed gives the same trajectory.
  """
  lat = np.asarray(lat, np.float64)
  lon = np.asarray(lon, np.float64)
  lat_rad = np.deg2rad(lat)
  levels = np.asarray(levels, np.float64)
  rng = np.random.default_rng(seed)
  static = statics(lat, lon)
  land = static["land_sea_mask"].astype(np.float64)
  steering = 1.5 * climate_wind([500.0], lat_rad)[0]
  modes = _Modes(lat_rad, len(lon), rng, steering)
  x_levels = _ln_ratio(levels)
  x_sfc = _ln_ratio([1000.0])
  g1 = np.array([800.0, 500.0])  # m^2/s^2 per unit anomaly, per mode
  cos_lat = np.maximum(np.cos(lat_rad), 0.05)[:, None]
  dlat = np.gradient(lat_rad)
  step = np.timedelta64(STEP_HOURS, "h")
  time = np.datetime64(start, "s") - 2 * step  # the first frame is a warm-up
  diurnal = np.zeros((len(lat), len(lon)))
  precip_rate_before = None

  def anomaly_at(x):
    """Geopotential and temperature anomalies at ln(p0/p) values x [K]."""
    fields = [modes.grid(s) for s in modes.state]
    dlon = [modes.grid(s, derivative=True) for s in modes.state]
    (h1, dh1), (h2, dh2) = _barotropic(x), _baroclinic(x)
    z = g1[0] * h1[:, None, None] * fields[0] + g1[1] * h2[:, None, None] * fields[1]
    t = (g1[0] * dh1[:, None, None] * fields[0] + g1[1] * dh2[:, None, None] * fields[1]) / R_DRY
    dz_dlon = g1[0] * h1[:, None, None] * dlon[0] + g1[1] * h2[:, None, None] * dlon[1]
    return z, t, dz_dlon, dlon[1]

  def winds(z, dz_dlon):
    psi = z / F0
    u = -np.gradient(psi, axis=-2) / dlat[:, None] / EARTH_RADIUS
    v = dz_dlon / F0 / (EARTH_RADIUS * cos_lat)
    return u, v

  for frame in range(num_frames + 1):
    time = time + step
    modes.step()
    year = (time - np.datetime64("2000-01-01", "s")).astype(np.float64) / 86400 / 365.2422
    season = np.sin(2 * np.pi * (year % 1.0 - 0.22))
    toa = solar_radiation.toa_incident_solar_radiation([time], lat, lon, num_bins=TOA_BINS)[0]
    z_anom, t_anom, dz_dlon, dbaroclinic = anomaly_at(x_levels)
    u_anom, v_anom = winds(z_anom, dz_dlon)
    z_s, t_s, dz_s, dbc_s = anomaly_at(x_sfc)
    u_s, v_s = winds(z_s, dz_s)
    p = levels[:, None, None]
    omega = 0.12 * np.sin(np.pi * np.minimum(p, 1000.0) / 1100.0) * (-dbaroclinic[None] / 3.0)
    temperature = climate_temperature(levels, lat_rad, season)[:, :, None] + t_anom
    lat_deg = lat[None, :, None]
    q_base = (0.016 * np.exp(-((lat_deg / 35.0) ** 2)) + 0.002) * (
        np.minimum(p, 1000.0) / 1000.0
    ) ** 3
    humidity = q_base * np.exp(0.06 * t_anom) * np.clip(1.0 - omega / 0.25, 0.3, 2.0)
    # Precipitation: ascent at ~700 hPa times low-level moisture, mean of the
    # rates at both ends of the 6 hours.
    omega_700 = 0.12 * np.sin(np.pi * 700 / 1100.0) * (-dbaroclinic / 3.0)
    q_850 = (0.016 * np.exp(-((lat[:, None] / 35.0) ** 2)) + 0.002) * 0.61
    rate = 1.5e-3 * np.log1p(np.exp(-omega_700 / 0.03 - 1.0)) * q_850 / 0.01
    precip = rate if precip_rate_before is None else 0.5 * (rate + precip_rate_before)
    precip_rate_before = rate
    diurnal = 0.6 * diurnal + 5.0 * (toa / 4.9e6 - 0.25) * (0.3 + 0.7 * land)
    if frame == 0:
      continue  # warm-up: the accumulations need a previous frame.
    t2m = (
        surface_climate_temperature(lat_rad, season)[:, None]
        + t_s[0]
        + diurnal
        - 6.5e-3 * static["geopotential_at_surface"] / GRAVITY
    )
    lat_abs = np.abs(lat)[:, None]
    msl = (
        101325.0
        + 1.2 * z_s[0]
        + 800.0 * np.exp(-(((lat_abs - 30) / 10) ** 2))
        - 1200.0 * np.exp(-(((lat_abs - 60) / 10) ** 2))
    )
    jet_sfc = climate_wind([1000.0], lat_rad)[0][:, None]
    fields = {
        "2m_temperature": t2m,
        "mean_sea_level_pressure": msl,
        "10m_u_component_of_wind": 0.7 * (jet_sfc + u_s[0]),
        "10m_v_component_of_wind": 0.7 * v_s[0],
        "total_precipitation_6hr": precip,
        "toa_incident_solar_radiation": toa,
        "temperature": temperature,
        "geopotential": climate_geopotential(levels, lat_rad, season)[:, :, None] + z_anom,
        "u_component_of_wind": climate_wind(levels, lat_rad)[:, :, None] + u_anom,
        "v_component_of_wind": v_anom,
        "vertical_velocity": omega,
        "specific_humidity": humidity,
    }
    num_lon = len(lon)
    yield time, {
        k: np.ascontiguousarray(
            np.broadcast_to(v, v.shape[:-1] + (num_lon,)) if v.shape[-1] == 1 else v,
            dtype=np.float32,
        )
        for k, v in fields.items()
    }
