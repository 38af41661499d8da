"""TFDS builders, installed as `graphcast_fdl.datasets`.

Importing this package registers every builder's data source with
`graphcast_fdl.data.sources` ("synthetic_weather", "era5"); the commands and
`experiments/` import it, the data layer never does.
"""

from graphcast_fdl.datasets.era5 import era5_dataset_builder
from graphcast_fdl.datasets.synthetic_weather import synthetic_weather_dataset_builder

__all__ = ["era5_dataset_builder", "synthetic_weather_dataset_builder"]
