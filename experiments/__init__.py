"""The flat registry of experiment configs, fiddlers and sweeps.

Fiddle's flags resolve `config:NAME`, `fiddler:NAME(...)` and `sweep:NAME`
only against top-level names of this module, so everything usable from the
command line is re-exported here.

Configs:  demo, graphcast, graphcast_small, graphcast_operational
Fiddlers: resolution, devices, set_phase, insert_phase, remove_phase,
          annealing, single_step_only, scale_steps, finetune_from, precision,
          fit_memory
Sweeps:   latent_sizes, mesh_sizes, resolutions, device_counts,
          learning_rates, max_rollouts, scaling, demo_widths
"""

from graphcast_fdl.experiments.base import demo
from graphcast_fdl.experiments.base import graphcast
from graphcast_fdl.experiments.base import graphcast_operational
from graphcast_fdl.experiments.base import graphcast_small
from graphcast_fdl.experiments.fiddlers import annealing
from graphcast_fdl.experiments.fiddlers import devices
from graphcast_fdl.experiments.fiddlers import finetune_from
from graphcast_fdl.experiments.fiddlers import fit_memory
from graphcast_fdl.experiments.fiddlers import insert_phase
from graphcast_fdl.experiments.fiddlers import precision
from graphcast_fdl.experiments.fiddlers import remove_phase
from graphcast_fdl.experiments.fiddlers import resolution
from graphcast_fdl.experiments.fiddlers import scale_steps
from graphcast_fdl.experiments.fiddlers import set_phase
from graphcast_fdl.experiments.fiddlers import single_step_only
from graphcast_fdl.experiments.sweeps import demo_widths
from graphcast_fdl.experiments.sweeps import device_counts
from graphcast_fdl.experiments.sweeps import latent_sizes
from graphcast_fdl.experiments.sweeps import learning_rates
from graphcast_fdl.experiments.sweeps import max_rollouts
from graphcast_fdl.experiments.sweeps import mesh_sizes
from graphcast_fdl.experiments.sweeps import resolutions
from graphcast_fdl.experiments.sweeps import scaling

CONFIGS = ("demo", "graphcast", "graphcast_small", "graphcast_operational")
FIDDLERS = (
    "resolution",
    "devices",
    "set_phase",
    "insert_phase",
    "remove_phase",
    "annealing",
    "single_step_only",
    "scale_steps",
    "finetune_from",
    "precision",
    "fit_memory",
)
SWEEPS = (
    "latent_sizes",
    "mesh_sizes",
    "resolutions",
    "device_counts",
    "learning_rates",
    "max_rollouts",
    "scaling",
    "demo_widths",
)
