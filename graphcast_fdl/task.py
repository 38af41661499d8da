"""Which variables and pressure levels a model reads and predicts, and when.

The task is shared by the model (channel layout, loss weights), the data
pipeline (what to load), evaluation (lead times) and the estimator (channel
counts), so it sits below all of them and holds each fact once: the variables,
which of them have pressure levels, the 6-hour time step, the one syntax of a
duration ("12h", "10d") and how many input frames a task reads. Variable names
are the ones ERA5 / WeatherBench 2 and the published GraphCast use.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

# The model's time step: frames, targets and lead times are 6 hours apart.
TIME_STEP_HOURS = 6
TIME_STEP = np.timedelta64(TIME_STEP_HOURS, "h")

PRESSURE_LEVELS_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
PRESSURE_LEVELS_37 = (
    1,
    2,
    3,
    5,
    7,
    10,
    20,
    30,
    50,
    70,
    100,
    125,
    150,
    175,
    200,
    225,
    250,
    300,
    350,
    400,
    450,
    500,
    550,
    600,
    650,
    700,
    750,
    775,
    800,
    825,
    850,
    875,
    900,
    925,
    950,
    975,
    1000,
)

SURFACE_TARGETS = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_v_component_of_wind",
    "10m_u_component_of_wind",
)
PRECIPITATION = "total_precipitation_6hr"
ATMOSPHERIC = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
FORCINGS = (
    "toa_incident_solar_radiation",
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)
STATIC = ("geopotential_at_surface", "land_sea_mask")
# Every variable with a pressure-level dim (the published ALL_ATMOSPHERIC_VARS);
# ATMOSPHERIC above is the subset our tasks use.
LEVEL_VARIABLES = frozenset(
    (
        "potential_vorticity",
        "specific_rain_water_content",
        "specific_snow_water_content",
        "geopotential",
        "temperature",
        "u_component_of_wind",
        "v_component_of_wind",
        "specific_humidity",
        "vertical_velocity",
        "vorticity",
        "divergence",
        "relative_humidity",
        "ozone_mass_mixing_ratio",
        "specific_cloud_liquid_water_content",
        "specific_cloud_ice_water_content",
        "fraction_of_cloud_cover",
    )
)
_DURATION = re.compile(r"^\s*(\d+)\s*([dh])\s*$")


def has_levels(name: str) -> bool:
  """Whether a variable has a pressure-level dim."""
  return name in LEVEL_VARIABLES


def duration_hours(text: str, field: str) -> int:
  """Hours in a duration written as whole hours or days: "12h", "10d".

  Raises:
    ValueError: naming `field` when `text` is not in that form.
  """
  match = _DURATION.match(str(text))
  if not match:
    raise ValueError(f"{field}={text!r}: write it as hours or days, e.g. 36h " "or 10d")
  return int(match.group(1)) * (24 if match.group(2) == "d" else 1)


def duration_steps(text: str, field: str) -> int:
  """Time steps in a duration ("36h" -> 6); a positive multiple of 6 h.

  Raises:
    ValueError: naming `field` when it is not a positive multiple of the step.
  """
  hours = duration_hours(text, field)
  if hours <= 0 or hours % TIME_STEP_HOURS:
    raise ValueError(
        f"{field}={text!r} is {hours} h: it must be a positive "
        f"multiple of {TIME_STEP_HOURS}h (the model's step)"
    )
  return hours // TIME_STEP_HOURS


def format_seconds(seconds: float) -> str:
  """A wall-clock duration for people: "45 s", "12.5 min", "3.2 h", "4.1 d"."""
  if seconds >= 2 * 86_400:
    return f"{seconds / 86_400:.1f} d"
  if seconds >= 2 * 3600:
    return f"{seconds / 3600:.1f} h"
  if seconds >= 120:
    return f"{seconds / 60:.1f} min"
  return f"{seconds:.3g} s"


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """Variables and levels of one forecasting task.

  Attributes:
    input_variables: variables fed to the model at each of the input frames.
    target_variables: variables the model predicts.
    forcing_variables: variables known in advance at target times.
    pressure_levels: hPa levels of the atmospheric variables.
    input_duration: span of the input frames, e.g. "12h" = 2 frames 6 h apart
      (see `input_frames`).
  """

  input_variables: tuple[str, ...]
  target_variables: tuple[str, ...]
  forcing_variables: tuple[str, ...]
  pressure_levels: tuple[int, ...]
  input_duration: str = "12h"

  @property
  def num_levels(self) -> int:
    return len(self.pressure_levels)


def input_frames(task: TaskConfig) -> int:
  """Input frames the task reads: input_duration / 6 h ("12h" -> 2)."""
  return duration_steps(task.input_duration, "task.input_duration")


def task_13() -> TaskConfig:
  """13 levels, precipitation both input and target (GraphCast_small)."""
  targets = SURFACE_TARGETS + (PRECIPITATION,) + ATMOSPHERIC
  return TaskConfig(
      input_variables=targets + FORCINGS + STATIC,
      target_variables=targets,
      forcing_variables=FORCINGS,
      pressure_levels=PRESSURE_LEVELS_13,
  )


def task_37() -> TaskConfig:
  """37 levels, as the flagship 0.25 degree GraphCast."""
  return dataclasses.replace(task_13(), pressure_levels=PRESSURE_LEVELS_37)


def task_13_precip_out() -> TaskConfig:
  """13 levels, precipitation predicted but not read (GraphCast_operational)."""
  targets = SURFACE_TARGETS + (PRECIPITATION,) + ATMOSPHERIC
  return TaskConfig(
      input_variables=SURFACE_TARGETS + ATMOSPHERIC + FORCINGS + STATIC,
      target_variables=targets,
      forcing_variables=FORCINGS,
      pressure_levels=PRESSURE_LEVELS_13,
  )
