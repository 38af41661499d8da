"""Parameter input/output: the published `.npz` format and our Orbax params.

`load_params` is the one loader both training (fine-tune init) and
evaluation use. Training-state checkpoints (optimiser state, step) stay with
the trainer in `train.checkpointing`.
"""

from graphcast_fdl.checkpoints.params import CheckpointNotFound
from graphcast_fdl.checkpoints.params import load_params
from graphcast_fdl.checkpoints.params import LoadedParams

__all__ = ["CheckpointNotFound", "LoadedParams", "load_params"]
