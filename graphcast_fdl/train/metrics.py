"""Step metrics as `clu.metrics` collections, flattened to writer names.

Metrics arrive as host values (scalars and a per-variable dict) with the
step's `finite` flag; skipped (non-finite) steps are left out of the averages
and counted instead. (`clu.metrics.Std` is not used: it fails on jax 0.10.)
No `from __future__ import annotations` here: a Collection reads its metric
classes from the field annotations.
"""

from typing import Any

from clu import metrics as clu_metrics
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


def to_host(tree):
  """Host numpy copies of (replicated) arrays; works with several processes."""

  def leaf(x):
    if isinstance(x, jax.Array):
      return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x)

  return jax.tree.map(leaf, tree)


def flatten(metrics: dict, prefix: str) -> dict[str, float]:
  """{"loss": a, "per_variable": {v: b}} -> {"prefix/loss": a, "prefix/loss/v": b}.

  Means over no finite step (NaN) are left out.
  """
  flat = {}
  for name, value in metrics.items():
    if name == "per_variable":
      for var, v in value.items():
        flat[f"{prefix}/loss/{var}"] = float(v)
    elif name != "finite":
      flat[f"{prefix}/{name}"] = float(value)
  return {k: v for k, v in flat.items() if np.isfinite(v) or k.endswith("skipped_steps")}


def _finite_mean(name: str):
  """An Average of output `name` over the finite steps."""

  @flax.struct.dataclass
  class FiniteMean(clu_metrics.Average):

    @classmethod
    def from_model_output(cls, finite=True, **outputs):
      return super().from_model_output(
          jnp.reshape(jnp.asarray(outputs[name], jnp.float32), (1,)),
          mask=jnp.reshape(jnp.asarray(finite, bool), (1,)),
      )

  return FiniteMean


@flax.struct.dataclass
class PerVariableMean(clu_metrics.Metric):
  """Means of the per-variable losses over the finite steps."""

  totals: dict[str, Any]
  count: jnp.ndarray

  @classmethod
  def empty(cls) -> "PerVariableMean":
    return cls(totals={}, count=jnp.zeros((), jnp.int32))

  @classmethod
  def from_model_output(cls, per_variable, finite=True, **_):
    finite = jnp.asarray(finite, bool)
    totals = {
        k: jnp.where(finite, jnp.asarray(v, jnp.float32), 0.0) for k, v in per_variable.items()
    }
    return cls(totals=totals, count=finite.astype(jnp.int32))

  def merge(self, other: "PerVariableMean") -> "PerVariableMean":
    if not self.totals:
      return other if other.totals else type(self)(totals={}, count=self.count + other.count)
    return type(self)(
        totals=jax.tree.map(jnp.add, self.totals, other.totals), count=self.count + other.count
    )

  def compute(self) -> dict[str, jnp.ndarray]:
    return {k: v / self.count for k, v in self.totals.items()}


@flax.struct.dataclass
class SkippedSteps(clu_metrics.Metric):
  """How many steps were skipped as non-finite."""

  count: jnp.ndarray

  @classmethod
  def empty(cls) -> "SkippedSteps":
    return cls(count=jnp.zeros((), jnp.int32))

  @classmethod
  def from_model_output(cls, finite=True, **_):
    return cls(count=1 - jnp.asarray(finite, bool).astype(jnp.int32))

  def merge(self, other: "SkippedSteps") -> "SkippedSteps":
    return type(self)(count=self.count + other.count)

  def compute(self) -> jnp.ndarray:
    return self.count


class _FromStep:
  """`from_step(host metrics of one step)`: the collection of that step."""

  @classmethod
  def from_step(cls, step_metrics: dict):
    return cls.single_from_model_output(**step_metrics)


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection, _FromStep):
  """Training metrics averaged between reports."""

  loss: _finite_mean("loss")
  per_variable: PerVariableMean
  grad_norm: _finite_mean("grad_norm")
  learning_rate: _finite_mean("learning_rate")
  skipped_steps: SkippedSteps


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection, _FromStep):
  """Held-out loss (and per variable), averaged over the evaluation batches."""

  loss: _finite_mean("loss")
  per_variable: PerVariableMean
