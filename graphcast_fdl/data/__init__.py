"""Data: sources, forcings, windowing, statistics and the Grain input pipelines."""

from graphcast_fdl.data.config import DataConfig
from graphcast_fdl.data.frames import DataError
from graphcast_fdl.data.grain_pipeline import eval_batches
from graphcast_fdl.data.grain_pipeline import train_batches
from graphcast_fdl.data.pipeline import example_times
from graphcast_fdl.data.pipeline import example_window
from graphcast_fdl.data.pipeline import split_frames
from graphcast_fdl.data.pipeline import max_rollout_steps
from graphcast_fdl.data.pipeline import normalization_stats
from graphcast_fdl.data.pipeline import prepare
from graphcast_fdl.data.stats import compute_stats
