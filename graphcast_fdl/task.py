"""Which variables and pressure levels a model reads and predicts.

The task is shared by the model (channel layout, loss weights), the data
pipeline (what to load) and the estimator (channel counts), so it sits below
all of them. Variable names are the ones ERA5 / WeatherBench 2 and the
published GraphCast use.
"""

from __future__ import annotations

import dataclasses

PRESSURE_LEVELS_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
PRESSURE_LEVELS_37 = (
    1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300,
    350, 400, 450, 500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900,
    925, 950, 975, 1000)

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


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """Variables and levels of one forecasting task.

  Attributes:
    input_variables: variables fed to the model at each of the input frames.
    target_variables: variables the model predicts.
    forcing_variables: variables known in advance at target times.
    pressure_levels: hPa levels of the atmospheric variables.
    input_duration: span of the input frames, e.g. "12h" = 2 frames 6 h apart.
  """

  input_variables: tuple[str, ...]
  target_variables: tuple[str, ...]
  forcing_variables: tuple[str, ...]
  pressure_levels: tuple[int, ...]
  input_duration: str = "12h"

  @property
  def num_levels(self) -> int:
    return len(self.pressure_levels)


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
