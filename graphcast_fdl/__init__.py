"""graphcast_fdl: train GraphCast-style weather models from Fiddle configs.

Layers, lower never importing higher: `task` (variables and levels) ->
`graph` -> `model` -> `data` -> `train` -> `analysis` -> `main`.
"""

__version__ = "0.1.0"
