"""A recomputed rollout whose backward pass keeps one predicted frame per step.

`jax.checkpoint` on a rollout's scan body keeps, per step, the body's inputs:
the whole input window (every input frame plus the static channels; 466
float32 channels at 37 levels, 1.8 GiB at 0.25 deg). Step t's window is the
first window with the predictions (and forcings) of the steps before it slid
in, and after `num_frames` steps every time-varying channel has been replaced,
so the backward pass can rebuild it exactly from the first window and the
last `num_frames` predictions. Keeping only each step's prediction (227
channels at 37 levels) halves what a long rollout holds; optionally those
predictions wait in host memory (`offload`) until their step of the backward
pass copies them back.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

# (params, window, x, consts) -> (prediction, per-step outputs)
StepFn = Callable[[Any, jax.Array, Any, Any], tuple[jax.Array, Any]]
# (window, prediction, x) -> next window
AdvanceFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def _to(x, space):
  return jax.device_put(x, space)


def _at(tree, i):
  return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), tree)


def scan_keeping_predictions(
    step: StepFn,
    advance: AdvanceFn,
    params,
    window: jax.Array,
    xs,
    consts,
    *,
    num_frames: int,
    offload: bool = False,
):
  """Stacked per-step outputs of a rollout of len(xs) steps.

  Each step computes `prediction, outputs = step(params, window, x, consts)`
  and moves on to `advance(window, prediction, x)`. Gradients flow to
  `params` and `window` (not to `xs` or `consts`, which are data); each
  step is recomputed in the backward pass (as under `jax.checkpoint`).
  """

  def forward(params, window, xs, consts, keep):
    def body(window, x):
      prediction, outputs = step(params, window, x, consts)
      kept = None
      if keep:
        kept = _to(prediction, jax.memory.Space.Host) if offload else prediction
      return advance(window, prediction, x), (outputs, kept)

    _, (outputs, kept) = jax.lax.scan(body, window, xs)
    return outputs, kept

  @jax.custom_vjp
  def rollout(params, window, xs, consts):
    return forward(params, window, xs, consts, keep=False)[0]

  def rollout_fwd(params, window, xs, consts):
    outputs, kept = forward(params, window, xs, consts, keep=True)
    return outputs, (params, window, xs, consts, kept)

  def rollout_bwd(residuals, outputs_bar):
    params, first, xs, consts, kept = residuals
    num_steps = jax.tree.leaves(xs)[0].shape[0]

    def window_at(t):
      """Step t's window: the first one advanced by steps t-num_frames..t-1."""
      window = first
      for j in range(num_frames):
        k = t - num_frames + j
        i = jnp.maximum(k, 0)
        prediction = _at(kept, i)
        if offload:
          prediction = _to(prediction, jax.memory.Space.Device)
        window = jnp.where(k >= 0, advance(window, prediction, _at(xs, i)), window)
      return window

    def back(state):
      i, window_bar, params_bar = state
      t = num_steps - 1 - i
      step_bar = _at(outputs_bar, t)
      x = _at(xs, t)

      def one_step(params, window):
        prediction, outputs = step(params, window, x, consts)
        return advance(window, prediction, x), outputs

      _, vjp = jax.vjp(one_step, params, window_at(t))
      step_params_bar, window_bar = vjp((window_bar, step_bar))
      params_bar = jax.tree.map(jnp.add, params_bar, step_params_bar)
      return i + 1, window_bar, params_bar

    # A loop whose trip count the compiler cannot see. Given the 2-step loop
    # XLA:TPU unrolled it and overlapped the steps' backward passes: at 0.25
    # deg / 37 levels the finished program fell from 32.37 to 26.44 GiB per
    # chip with the bound hidden, and at rollout 12 (loop kept) the checked
    # heap from 25.75 to 20.67 GiB (benchmarks/RESULTS.md, session 7). One
    # step at a time is the point of this VJP. (`analysis.hlo_loops` prices
    # this loop at the rollout length.)
    hidden_steps = jax.lax.optimization_barrier(jnp.int32(num_steps))
    init = (jnp.int32(0), jnp.zeros_like(first), jax.tree.map(jnp.zeros_like, params))
    _, window_bar, params_bar = jax.lax.while_loop(lambda s: s[0] < hidden_steps, back, init)
    return params_bar, window_bar, None, None

  rollout.defvjp(rollout_fwd, rollout_bwd)
  return rollout(params, window, xs, consts)
