"""Import/export of the published GraphCast `.npz` checkpoint format.

The published file is `np.savez` of a flattened dataclass tree, keys joined by
":" (see the golden `checkpoint_keys.txt`):
  params:<gnn>/~_networks_builder/<block>_mlp/~/linear_<i>:{w,b}
  params:<gnn>/~_networks_builder/<block>_layer_norm:{scale,offset}
  model_config:<field>            (None fields omitted)
  task_config:<field>[:<index>]   (tuples flattened by index)
  description, license
Our params are {gnn: {<block>_mlp: {linear_<i>: {w, b}},
                      <block>_layer_norm: {scale, offset}}}, so each key maps
one-to-one by the two functions below. Loading checks the file against the
parameter shapes the configs imply and names the first missing, extra or
misshapen key.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from typing import Any

import jax
import numpy as np

from graphcast_fdl.model import predictor as predictor_lib
from graphcast_fdl.model.config import ModelConfig
from graphcast_fdl.task import TaskConfig

PARAMS = "params"
_MLP_KEY = re.compile(r"^params:(\w+)/~_networks_builder/(\w+_mlp)/~/(linear_\d+):(w|b)$")
_LN_KEY = re.compile(r"^params:(\w+)/~_networks_builder/(\w+_layer_norm):(scale|offset)$")
# Published ModelConfig fields, in their order; our ModelConfig has more.
MODEL_FIELDS = (
    "resolution",
    "mesh_size",
    "latent_size",
    "gnn_msg_steps",
    "hidden_layers",
    "radius_query_fraction_edge_length",
    "mesh2grid_edge_normalization_factor",
)
_INT_FIELDS = ("mesh_size", "latent_size", "gnn_msg_steps", "hidden_layers")
TASK_FIELDS = (
    "input_variables",
    "target_variables",
    "forcing_variables",
    "pressure_levels",
    "input_duration",
)


class CheckpointError(ValueError):
  """A checkpoint key is missing, unexpected or of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  params: Any  # float32 pytree as Predictor.init_params returns.
  model: ModelConfig
  task: TaskConfig
  description: str = ""
  license: str = ""


def npz_key(path: tuple[str, ...]) -> str:
  """Our param path, e.g. (gnn, block_mlp, linear_0, w) -> published key."""
  if len(path) == 4 and path[1].endswith("_mlp"):
    gnn, block, layer, name = path
    return f"{PARAMS}:{gnn}/~_networks_builder/{block}/~/{layer}:{name}"
  if len(path) == 3 and path[1].endswith("_layer_norm"):
    gnn, block, name = path
    return f"{PARAMS}:{gnn}/~_networks_builder/{block}:{name}"
  raise CheckpointError(f"param path {'/'.join(path)} has no checkpoint key")


def param_path(key: str) -> tuple[str, ...]:
  """Published params key -> our param path (inverse of npz_key)."""
  match = _MLP_KEY.match(key) or _LN_KEY.match(key)
  if match is None:
    raise CheckpointError(f"checkpoint key {key!r} is not a GraphCast param")
  return match.groups()


def _flat_params(params) -> dict[tuple[str, ...], Any]:
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    flat[tuple(p.key for p in path)] = leaf
  return flat


def _expected_shapes(model: ModelConfig, task: TaskConfig) -> dict[str, tuple]:
  shapes = predictor_lib.param_shapes(model, task)
  return {npz_key(path): tuple(leaf.shape) for path, leaf in _flat_params(shapes).items()}


def _read_config(flat: dict, prefix: str) -> dict:
  out = {}
  for key, value in flat.items():
    if key.startswith(prefix + ":"):
      parts = key[len(prefix) + 1 :].split(":")
      out.setdefault(parts[0], {})[parts[1] if len(parts) > 1 else None] = value
  return out


def _model_config(flat: dict, overrides: dict) -> ModelConfig:
  raw = _read_config(flat, "model_config")
  kwargs = {}
  for field in MODEL_FIELDS:
    if field not in raw:
      if field == "mesh2grid_edge_normalization_factor":
        continue
      raise CheckpointError(f"checkpoint key 'model_config:{field}' is missing")
    value = raw[field][None]
    kwargs[field] = int(value) if field in _INT_FIELDS else float(value)
  unknown = set(raw) - set(MODEL_FIELDS)
  if unknown:
    raise CheckpointError(f"checkpoint key 'model_config:{sorted(unknown)[0]}' is not known")
  kwargs.update(overrides)
  return ModelConfig(**kwargs)


def _task_config(flat: dict) -> TaskConfig:
  raw = _read_config(flat, "task_config")
  kwargs = {}
  for field in TASK_FIELDS:
    if field not in raw:
      raise CheckpointError(f"checkpoint key 'task_config:{field}' is missing")
    items = raw[field]
    if field == "input_duration":
      kwargs[field] = str(items[None])
      continue
    values = [items[str(i)] for i in range(len(items)) if str(i) in items]
    if len(values) != len(items):
      raise CheckpointError(f"checkpoint keys 'task_config:{field}:*' are not " "numbered 0..n-1")
    convert = int if field == "pressure_levels" else str
    kwargs[field] = tuple(convert(v) for v in values)
  unknown = set(raw) - set(TASK_FIELDS)
  if unknown:
    raise CheckpointError(f"checkpoint key 'task_config:{sorted(unknown)[0]}' is not known")
  return TaskConfig(**kwargs)


def check_params(flat_params: dict[str, Any], model: ModelConfig, task: TaskConfig) -> None:
  """Raises CheckpointError naming the first missing/extra/misshapen key."""
  expected = _expected_shapes(model, task)
  for key, shape in expected.items():
    if key not in flat_params:
      raise CheckpointError(f"checkpoint key {key!r} is missing")
    value = flat_params[key]
    got = tuple(value.shape if hasattr(value, "shape") else np.shape(value))
    if got != shape:
      raise CheckpointError(f"checkpoint key {key!r} has shape {got}, the configs imply {shape}")
  for key in flat_params:
    if key not in expected:
      raise CheckpointError(f"checkpoint key {key!r} is not expected by the " "configs")


def load(path: str, **model_overrides) -> Checkpoint:
  """Reads a published-format checkpoint into our params and configs.

  Args:
    path: the .npz file.
    **model_overrides: our ModelConfig fields the format lacks (e.g.
      precision="float32", remat=..., edge_block_size=...).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"checkpoint file not found: {path}")
  with open(path, "rb") as f:
    data = np.load(io.BytesIO(f.read()))
    flat = {k: data[k] for k in data.files}
  model = _model_config(flat, model_overrides)
  task = _task_config(flat)
  params_flat = {k: v for k, v in flat.items() if k.startswith(PARAMS + ":")}
  for key in params_flat:
    param_path(key)  # Names a key that is not a GraphCast param.
  check_params(params_flat, model, task)
  params = {}
  for key, value in params_flat.items():
    node = params
    path = param_path(key)
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = np.asarray(value, np.float32)
  known = {"description", "license"}
  extra = [k for k in flat if ":" not in k and k not in known]
  if extra:
    raise CheckpointError(f"checkpoint key {extra[0]!r} is not known")
  return Checkpoint(
      params=params,
      model=model,
      task=task,
      description=str(flat.get("description", "")),
      license=str(flat.get("license", "")),
  )


def to_flat(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
  """The published flattening, in its key order."""
  params = {
      npz_key(path): np.asarray(leaf, np.float32)
      for path, leaf in _flat_params(checkpoint.params).items()
  }
  check_params(params, checkpoint.model, checkpoint.task)
  flat = {k: params[k] for k in sorted(params)}
  for field in MODEL_FIELDS:
    value = getattr(checkpoint.model, field)
    if value is None:
      continue
    value = int(value) if field in _INT_FIELDS else float(value)
    flat[f"model_config:{field}"] = np.asarray(value)
  for field in TASK_FIELDS:
    value = getattr(checkpoint.task, field)
    if isinstance(value, (tuple, list)):
      for i, item in enumerate(value):
        item = int(item) if field == "pressure_levels" else str(item)
        flat[f"task_config:{field}:{i}"] = np.asarray(item)
    else:
      flat[f"task_config:{field}"] = np.asarray(str(value))
  flat["description"] = np.asarray(checkpoint.description)
  flat["license"] = np.asarray(checkpoint.license)
  return flat


def save(path: str, checkpoint: Checkpoint) -> None:
  """Writes the published format (keys, order, shapes and dtypes)."""
  flat = to_flat(checkpoint)
  buffer = io.BytesIO()
  np.savez(buffer, **flat)
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(path, "wb") as f:
    f.write(buffer.getvalue())
