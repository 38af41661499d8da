"""graphcast_fdl: train GraphCast-style weather models from Fiddle configs.

The layer ladder. A module imports only from its own layer or lower ones;
tests/test_layers.py parses every import (those inside functions too) and
fails on one that climbs, reading the ladder from the lines below:

  0. task grid system: the domain facts, each once: variables and levels, the
     6-hour step, durations and input frames (task); grid shape and
     coordinates (grid); operating-system plumbing (system: the OSError in an
     exception chain, stderr captured below Python)
  1. graph: icosahedral multi-mesh, grid<->mesh graphs, structural features
     and their widths
  2. model: the Flax network, normalisation, rollout and loss (the Predictor)
  3. checkpoints: parameter input/output, `.npz` and Orbax, one `load_params`
  4. data: frames, example windows, forcings, statistics, the input pipeline
     and the registry of data sources
  5. train: phases and schedules, optimiser, sharding, the trainer and its
     training-state checkpoints
  6. analysis evaluation: the cost model and estimator; WB2 scores, forecasts
  7. experiments datasets: Fiddle configs and the TFDS builders, which
     register their data sources (installed as graphcast_fdl.experiments and
     graphcast_fdl.datasets from the repo's experiments/ and datasets/)
  8. cli main: the absl commands

(shared/DESIGN.md puts `cli` at 7 and leaves experiments/datasets unnumbered;
they sit at 7 here, below the commands that import them, and the grid moved
from data/ to the ground floor, beside the task, because graph, data and the
estimator all need it.)

Packages sharing a layer are peers that do not import each other (analysis
prices a run, evaluation scores one; neither needs the other), except these
edges, the only ones allowed within a layer:

  peers: experiments -> datasets, main -> cli

(the configs name data sources the builders register; `main` dispatches to
the commands). Imports inside functions are kept for a stated reason only
(matplotlib when a figure is drawn; the commands check flags before loading
JAX).
"""

__version__ = "0.1.0"
