"""Analytic FLOPs, bytes moved and memory of one GraphCast training step.

GraphCast is a stack of MLPs (Linear-swish-...-Linear, LayerNorm) applied to
every node or edge of a set, with gathers of node latents onto edges and
segment sums of edge messages onto receivers. Counting those applications in
closed form (`sizes.graph_sizes`) gives, per example and per rollout step:
  * FLOPs: 2 per multiply-add of each Linear, plus a few per element for bias,
    swish and LayerNorm; backward costs twice the forward (XLA counts the same
    way: the 1 deg/13 level/M5 published model is 1.24e13 FLOP for loss+grad,
    this model says 1.24e13);
  * bytes: each op reads its operands and writes its result once (no fusion
    assumed beyond that); backward moves twice the forward's bytes;
  * memory: what the backward pass must keep (inputs, pre-activations and
    activations of each MLP), reduced by the remat policy to checkpoint
    boundaries plus the one segment being recomputed; the largest temporary
    of one MLP (bounded by `edge_block_size` for encoder/decoder edges).
Numbers are per example; `step_cost` scales by batch and rollout length.
"""

from __future__ import annotations

import dataclasses
import math

from graphcast_fdl import task as task_lib
from graphcast_fdl.analysis import sizes as sizes_lib
from graphcast_fdl.model.config import ModelConfig, RematConfig

DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
# Per element of a hidden or output activation: bias add (1), swish (~4),
# LayerNorm (~8 over its output); spread as an average per element.
ELEMENTWISE_FLOPS = 6
# Read+write passes per hidden/output element besides the matmuls: bias,
# swish (x * sigmoid(x)), LayerNorm (mean, variance, normalise, scale),
# residual add. Unfused, each reads and writes the element once.
ELEMENTWISE_PASSES = 10
# Window-sized float32 buffers the backward pass of a rollout that keeps
# predictions (`RematConfig.rollout_saves="prediction"`) holds at once beside
# one step's backward: the window it rebuilds and its cotangent, the step's
# prediction and target and their cotangents, two bfloat16 windows. 5
# matches XLA:TPU's finished programs at 0.25 deg within 5% (rollouts 2 and
# 12: 27.97 and 29.13 GiB; session 7, benchmarks/RESULTS.md); 6 matched
# session 5's program, whose backward loop the compiler unrolled.
KEPT_WINDOWS = 5
BACKWARD_FACTOR = 2  # backward FLOPs and bytes per forward FLOP and byte
ADAM_STATE_COPIES = 2  # mu and nu, float32, same shapes as params


@dataclasses.dataclass(frozen=True)
class Retention:
  """What a compiler keeps per item of an MLP for its backward pass, in
  elements per input, hidden and output element (a backend property, named
  by `hardware.Hardware.retention`).

  Attributes:
    per_input: copies of the MLP's input.
    per_hidden: per hidden element: pre-activation, sigmoid, swish output.
    per_output: per output element: LayerNorm input and normalised value.
    gathered: whether edge MLPs keep the node shares gathered onto edges.
    loop_checkpoints_in_rollout: whether checkpoints that are loops of their
      own (processor groups, grid-node blocks: a `lax.scan` of checkpointed
      bodies) still lower the peak inside a rematerialised rollout step.
    target_copy: whether a rollout (2+ steps) holds a second, relaid-out copy
      of its float32 targets among the temporaries (the scan slices them).
    heap_overhead: the compiler's temporaries over the bytes live at their
      peak (its heap's fragmentation), on activations and temporaries.
  """

  per_input: int = 1
  per_hidden: int = 3
  per_output: int = 2
  gathered: bool = True
  loop_checkpoints_in_rollout: bool = True
  target_copy: bool = False
  heap_overhead: float = 1.0


RETENTION = {
    # Every intermediate kept: XLA:CPU and XLA:GPU keep about this (their
    # compiled peaks are 0.93-1.17x of it: benchmarks/RESULTS.md).
    "unfused": Retention(),
    # XLA:TPU fuses the elementwise ops into the matmuls and recomputes them
    # in the backward's fusions: it keeps each MLP's input, its hidden
    # pre-activations and its LayerNorm input, and re-gathers node shares.
    # Read off the buffers live at the peak of the compiled 1 deg program
    # (3 edge-sized and 4 mesh-node-sized bf16 buffers per processor step).
    # XLA:TPU inside a rematerialised rollout step keeps the processor groups'
    # and grid blocks' activations as if unchecked (0.25 deg, rollout 2 and
    # 12: 38.4 and 78.2 GiB with processor groups of 3, 72.0 with groups of
    # 1 and grid blocks: only segments and encoder/decoder remat lower it),
    # copies the targets into the scan's layout (f32[1,r,13,181,360]: twice
    # at 1 deg, rollout 4), and its temporaries exceed the bytes live at the
    # peak (1.2x at 1 deg, rollout 1 and 4: 8.62 / 7.19 and 9.57 / 7.88 GiB;
    # 1.1 is what also holds the 0.25 deg rollouts, whose buffers we did not
    # dump: a 0.25 deg rollout compile takes 30 min here).
    "fused": Retention(
        per_input=1,
        per_hidden=1,
        per_output=1,
        gathered=False,
        loop_checkpoints_in_rollout=False,
        target_copy=True,
        heap_overhead=1.1,
    ),
}


@dataclasses.dataclass(frozen=True)
class MlpApplication:
  """One MLP run on every item of a node or edge set.

  Attributes:
    name: module name, e.g. "processor_edges_3".
    stage: "encoder", "processor" or "decoder" (the remat units).
    items: nodes or edges per example.
    d_in: input width (edges: edge + sender + receiver latents concatenated).
    d_out: output width.
    gathered: node latents gathered per item (2 for edges, 0 for nodes).
    scatter_to: receiver nodes the outputs are summed into (edges only).
    edge_blocked: whether `edge_block_size` splits this set into blocks.
    projected_nodes: nodes whose share of the first layer is computed once per
      node and gathered (senders + receivers); 0 when inputs are concatenated.
    shares_per_edge: node shares of the first layer computed per edge instead
      (the grid side under `model.grid_parts_per_edge`).
    batched: False for edge embeddings of static features (once per step,
      not per example).
    grid_rows: a grid-node MLP, run in blocks under `remat.grid_block_size`.
    input_kept: whether a blocked application keeps its own input (False for
      the output MLP, which runs inside the decoder's grid-update block).
  """

  name: str
  stage: str
  items: int
  d_in: int
  d_out: int
  gathered: int = 0
  scatter_to: int = 0
  edge_blocked: bool = False
  projected_nodes: int = 0
  shares_per_edge: int = 0
  batched: bool = True
  grid_rows: bool = False
  input_kept: bool = True


@dataclasses.dataclass(frozen=True)
class StepCost:
  """Analytic cost of one optimiser step on one device.

  All byte counts are per device. `activation_bytes` is what is saved for
  the backward pass at its peak (under the remat policy), `temporary_bytes`
  the largest transient buffer set of one MLP on top of it.
  """

  flops: float
  bytes_accessed: float
  param_bytes: float
  optimizer_bytes: float
  gradient_bytes: float
  data_bytes: float
  activation_bytes: float
  temporary_bytes: float
  recompute_fraction: float
  num_params: int
  # Pinned host memory the step uses (saved predictions under
  # `remat.offload_rollout`, the targets under `remat.host_targets`): not
  # part of the device's peak.
  host_bytes: float = 0.0
  # The step's whole batch wherever it waits (`data_bytes` is its share in
  # device memory): what the loader delivers per step.
  batch_bytes: float = 0.0

  @property
  def peak_bytes(self) -> float:
    return (
        self.param_bytes
        + self.optimizer_bytes
        + self.gradient_bytes
        + self.data_bytes
        + self.activation_bytes
        + self.temporary_bytes
    )


def mlp_applications(
    model: ModelConfig,
    task: task_lib.TaskConfig,
    published_layout: bool = False,
    graph: sizes_lib.GraphSizes | None = None,
) -> list[MlpApplication]:
  """Every MLP application of one forward step, in execution order.

  Our edge MLPs compute the sender and receiver shares of their first layer
  once per node and gather them (`model/gnn.py`); the published code
  concatenates [edge, sender, receiver] per edge (`published_layout=True`,
  used to compare with XLA figures of the published implementation). The
  published code also runs the (unused, dead-code-eliminated) mesh-node
  update of mesh2grid; neither counts it here. `graph`: the sizes one
  device runs (`spatial_cost.part_sizes`), default the whole graph.
  """
  g = sizes_lib.graph_sizes(model) if graph is None else graph
  c = sizes_lib.channels(task)
  L, e = model.latent_size, sizes_lib.EDGE_FEATURES
  n_grid, n_mesh = g.grid_nodes, g.mesh_nodes

  def edges(name, stage, items, senders, receivers, blocked=False, grid_side=0):
    """`grid_side`: the grid nodes' share (of `grid_side` rows) is computed
    per edge under `model.grid_parts_per_edge`."""
    if published_layout:
      return MlpApplication(
          name, stage, items, 3 * L, L, gathered=2, scatter_to=receivers, edge_blocked=blocked
      )
    per_edge = grid_side if model.grid_parts_per_edge else 0
    return MlpApplication(
        name,
        stage,
        items,
        L,
        L,
        gathered=2,
        scatter_to=receivers,
        edge_blocked=blocked,
        projected_nodes=senders + receivers - per_edge,
        shares_per_edge=1 if per_edge else 0,
    )

  def embed(name, stage, items, blocked=False):
    return MlpApplication(name, stage, items, e, L, edge_blocked=blocked, batched=published_layout)

  def grid_nodes(name, stage, d_in, d_out, input_kept=True):
    return MlpApplication(name, stage, n_grid, d_in, d_out, grid_rows=True, input_kept=input_kept)

  apps = [
      grid_nodes("encoder_nodes_grid", "encoder", c.grid_input, L),
      MlpApplication("encoder_nodes_mesh", "encoder", n_mesh, c.grid_input, L),
      embed("encoder_edges_grid2mesh", "encoder", g.grid2mesh_edges, True),
      edges(
          "grid2mesh_edges",
          "encoder",
          g.grid2mesh_edges,
          g.sender_rows("grid2mesh"),
          n_mesh,
          True,
          grid_side=g.sender_rows("grid2mesh"),
      ),
      MlpApplication("grid2mesh_nodes_mesh", "encoder", n_mesh, 2 * L, L),
      grid_nodes("grid2mesh_nodes_grid", "encoder", L, L),
      embed("encoder_edges_mesh", "processor", g.mesh_edges),
  ]
  for i in range(model.gnn_msg_steps):
    apps += [
        edges(f"processor_edges_{i}", "processor", g.mesh_edges, g.sender_rows("mesh"), n_mesh),
        MlpApplication(f"processor_nodes_{i}", "processor", n_mesh, 2 * L, L),
    ]
  apps += [
      embed("encoder_edges_mesh2grid", "decoder", g.mesh2grid_edges, True),
      edges(
          "mesh2grid_edges",
          "decoder",
          g.mesh2grid_edges,
          g.sender_rows("mesh2grid"),
          n_grid,
          True,
          grid_side=n_grid,
      ),
      grid_nodes("mesh2grid_nodes_grid", "decoder", 2 * L, L),
      grid_nodes("decoder_nodes_grid", "decoder", L, c.output, input_kept=False),
  ]
  return apps


def _hidden(model: ModelConfig) -> int:
  return model.hidden_layers * model.latent_size


def forward_flops(app: MlpApplication, model: ModelConfig) -> float:
  L, h = model.latent_size, model.hidden_layers
  macs = app.d_in * L + (h - 1) * L * L + L * app.d_out
  per_items = app.items * (2 * macs + ELEMENTWISE_FLOPS * (h * L + app.d_out))
  node_shares = app.projected_nodes + app.shares_per_edge * app.items
  return per_items + 2 * node_shares * L * L  # node shares of layer 0


def forward_elements_moved(app: MlpApplication, model: ModelConfig) -> float:
  """Activation elements read + written by one forward application."""
  L = model.latent_size
  n = app.items
  moved = n * app.d_in + n * _hidden(model) * 2 + n * app.d_out  # matmuls
  moved += ELEMENTWISE_PASSES * n * (_hidden(model) + app.d_out) / 2
  if app.projected_nodes:  # node shares: matmul in/out, then gather + add
    moved += app.projected_nodes * 2 * L + n * app.gathered * L * 2
  elif app.gathered:
    moved += 2 * n * app.gathered * L + 2 * n * app.d_in  # gather + concat
  if app.scatter_to:
    moved += n * app.d_out + app.scatter_to * app.d_out  # segment sum
  return moved


def saved_elements(
    app: MlpApplication,
    model: ModelConfig,
    block: int | None = None,
    retention: Retention = RETENTION["unfused"],
) -> float:
  """Elements kept for the backward pass of one application.

  Unfused: the input, per hidden element the pre-activation, sigmoid and
  activation (swish = x * sigmoid(x)), per output element the LayerNorm input
  and its normalised value, and for edges the gathered node shares; a fusing
  compiler keeps less (`Retention`). `block` caps the items resident at once.
  """
  r = retention
  n = app.items if block is None else min(app.items, block)
  per_item = r.per_input * app.d_in + r.per_hidden * _hidden(model) + r.per_output * app.d_out
  return n * (per_item + r.gathered * app.gathered * model.latent_size)


def temporary_elements(app: MlpApplication, model: ModelConfig, block: int | None) -> float:
  """Transient buffers while one application runs forward or backward:
  its input and hidden activations and their cotangents."""
  n = app.items if block is None else min(app.items, block)
  return n * (app.d_in + _hidden(model) + app.d_out)


def _block(app: MlpApplication, model: ModelConfig, remat: RematConfig) -> int | None:
  """Items of `app` per block of its block loop, or None when it runs whole
  (no block size, or one that covers the set: the model loops only then)."""
  if app.edge_blocked and model.edge_block_size:
    block = model.edge_block_size
  elif app.grid_rows and remat.grid_block_size:
    block = remat.grid_block_size
  else:
    return None
  return block if block < app.items else None


def blocked_saved_elements(app: MlpApplication, model: ModelConfig) -> float:
  """Elements a checkpointed block loop keeps of `app`.

  Grid-node MLPs keep their input; edge sets keep the per-node shares of
  their first layer (their edge features are static inputs).
  """
  if app.grid_rows:
    return app.items * app.d_in if app.input_kept else 0.0
  return app.projected_nodes * model.latent_size


def inner_remat_levels(app: MlpApplication, model: ModelConfig, remat: RematConfig) -> int:
  """Times `app` is recomputed inside one rollout step's backward: once per
  checkpoint that encloses it (stage, processor group, block loop)."""
  in_encdec = app.stage in ("encoder", "decoder")
  return (
      int(remat.encoder_decoder and in_encdec)
      + int(bool(remat.processor_every_k) and app.stage == "processor")
      + int(_block(app, model, remat) is not None)
  )


def step_activation_elements(
    apps: list[MlpApplication],
    model: ModelConfig,
    remat: RematConfig,
    batch: int = 1,
    retention: Retention = RETENTION["unfused"],
    graph: sizes_lib.GraphSizes | None = None,
) -> tuple[float, float]:
  """(saved, recompute_peak) elements of one rollout step's backward.

  saved: kept from the forward pass under `remat`;
  recompute_peak: the largest remat segment re-materialised in the backward
  (a stage, a processor group, or one block of a block loop).
  Both for `batch` examples (static edge embeddings are not per example),
  on `graph` (default: the whole graph).
  """
  g = sizes_lib.graph_sizes(model) if graph is None else graph
  L = model.latent_size
  by_stage = {s: [a for a in apps if a.stage == s] for s in ("encoder", "processor", "decoder")}
  per_batch = lambda a: batch if a.batched else 1

  def resident(app):
    """Kept by one application when its stage is not recomputed."""
    if _block(app, model, remat) is not None:
      return blocked_saved_elements(app, model) * per_batch(app)
    return saved_elements(app, model, retention=retention) * per_batch(app)

  segments = [0.0]
  for a in apps:  # one block of each block loop, recomputed alone
    block = _block(a, model, remat)
    if block is not None:
      segments.append(saved_elements(a, model, block, retention) * per_batch(a))
  total = 0.0
  for stage in ("encoder", "decoder"):
    stage_resident = sum(resident(a) for a in by_stage[stage])
    if remat.encoder_decoder:
      # Only the stage inputs stay (grid and mesh latents, L wide); the stage
      # is rerun in the backward, keeping what its parts keep.
      total += batch * (g.grid_nodes + g.mesh_nodes) * L
      segments.append(stage_resident)
    else:
      total += stage_resident
  k = remat.processor_every_k
  steps = model.gnn_msg_steps
  processor = by_stage["processor"]
  if k:
    per_step = sum(resident(a) for a in processor[1:]) / max(steps, 1)
    total += resident(processor[0])  # mesh edge embedding
    total += math.ceil(steps / k) * batch * (g.mesh_nodes + g.mesh_edges) * L
    segments.append(min(k, steps) * per_step)
  else:
    total += sum(resident(a) for a in processor)
  return total, max(segments)


def rollout_segments(remat: RematConfig, rollout_steps: int) -> tuple[int, int, int]:
  """(segment length k, number of segments, remaining steps) of a rollout
  under `remat.rollout_segment`; k = 0 when segments are off."""
  k = remat.rollout_segment
  if not 1 < k < rollout_steps:
    return 0, 0, rollout_steps
  num_segments, rest = divmod(rollout_steps, k)
  return k, num_segments, rest


def recompute_fraction(
    apps: list[MlpApplication], model: ModelConfig, remat: RematConfig, rollout_steps: int
) -> float:
  """Extra forward passes in the backward, as a fraction of one forward.

  A remat'd rollout step (only when there are 2+ steps, as in
  `Predictor._scan`) reruns the whole step, and so does a rollout segment
  for the steps inside segments; inner checkpoints (processor groups,
  encoder/decoder, edge and grid-node block loops) rerun their part once
  more for each checkpoint that encloses it.
  """
  total = sum(forward_flops(a, model) for a in apps)
  inner = sum(inner_remat_levels(a, model, remat) * forward_flops(a, model) for a in apps)
  outer = 1.0 if remat.rollout_step and rollout_steps > 1 else 0.0
  k, num_segments, _ = rollout_segments(remat, rollout_steps)
  outer += num_segments * k / rollout_steps
  return outer + inner / total


def step_cost(
    model: ModelConfig,
    task: task_lib.TaskConfig,
    *,
    rollout_steps: int = 1,
    batch_per_device: int = 1,
    num_devices: int = 1,
    shard_params: bool = False,
    remat: RematConfig | None = None,
    precision: str | None = None,
    published_layout: bool = False,
    retention: str = "unfused",
    graph: sizes_lib.GraphSizes | None = None,
    transfer_dtype: str = "float32",
) -> StepCost:
  """Analytic cost of one training step (loss + grad + AdamW) per device.

  `retention`: a `RETENTION` key, what the backend's compiler keeps for the
  backward pass (`hardware.Hardware.retention`).
  `graph`: the part of the graphs one device runs when devices share an
  example (`spatial_cost.part_sizes`); its grid rows also size the batch.
  `transfer_dtype`: what inputs and forcings travel in (`data.transfer_dtype`;
  targets stay float32).
  """
  remat = model.remat if remat is None else remat
  precision = precision or model.precision
  act = DTYPE_BYTES[precision]
  b, r = batch_per_device, rollout_steps
  g = sizes_lib.graph_sizes(model) if graph is None else graph
  c = sizes_lib.channels(task)
  apps = mlp_applications(model, task, published_layout, graph=g)
  n_params = sizes_lib.num_params(model, task)

  per_batch = lambda a: b if a.batched else 1
  fwd_flops = sum(forward_flops(a, model) * per_batch(a) for a in apps)
  fwd_bytes = act * sum(forward_elements_moved(a, model) * per_batch(a) for a in apps)
  extra = recompute_fraction(apps, model, remat, r)
  passes = 1 + BACKWARD_FACTOR + extra
  shard = num_devices if shard_params else 1
  param_bytes = 4 * n_params / shard + (2 * n_params if act == 2 else 0)
  optimizer_bytes = ADAM_STATE_COPIES * 4 * n_params / shard
  gradient_bytes = 4 * n_params
  # AdamW reads params, grads, mu, nu and writes params, mu, nu (float32).
  update_bytes = 7 * 4 * n_params / shard
  weight_reads = passes * r * n_params * act

  # The batch: input frames and statics, then per rollout step the targets
  # (float32) and forcings (inputs and forcings in `transfer_dtype`). With
  # `host_targets` the targets wait in host memory and the device holds one
  # step's at a time; with `host_inputs` the input frames wait there too
  # (their one device copy builds the first window, counted with the
  # activations, and dies before the backward).
  sent = DTYPE_BYTES[transfer_dtype]
  target_bytes = 4 * b * g.grid_nodes * c.output  # one step's, float32
  input_bytes = sent * b * g.grid_nodes * c.grid_input
  forcing_bytes = sent * b * g.grid_nodes * r * c.forcing
  batch_bytes = input_bytes + forcing_bytes + r * target_bytes
  on_device_targets = 1 if remat.host_targets else r
  data_bytes = forcing_bytes + on_device_targets * target_bytes
  data_bytes += 0.0 if remat.host_inputs else input_bytes
  host_bytes = r * target_bytes if remat.host_targets else 0.0
  host_bytes += input_bytes if remat.host_inputs else 0.0

  kept = RETENTION[retention]
  saving = remat  # the checkpoints that lower the peak under this compiler
  keeps_predictions = remat.rollout_step and r > 1 and remat.rollout_saves == "prediction"
  # The custom-VJP rollout (`model/rollout.py`) differentiates each step with
  # an explicit vjp, where inner checkpoints act as in a one-step program.
  if r > 1 and remat.rollout_step and not kept.loop_checkpoints_in_rollout:
    if not keeps_predictions:
      saving = dataclasses.replace(remat, processor_every_k=0, grid_block_size=None)
  saved, recompute_peak = step_activation_elements(apps, model, saving, b, kept, graph=g)
  # The scan carry (the float32 input window) is saved at every step; the
  # loss is accumulated inside the step, so predictions are not kept.
  carry = 4 * b * g.grid_nodes * c.input_frames * c.input_frame
  k, num_segments, rest = rollout_segments(remat, r)
  # Steps whose state is live together in the backward: all of them, or
  # with segments the segment inputs plus one recomputed segment (or the
  # remainder steps, which come first).
  live_steps = num_segments + max(k, rest) if k else r
  if keeps_predictions:
    # `model/rollout.py`: each step keeps its predicted frame (float32,
    # output channels) instead of its input window. The backward pass holds
    # KEPT_WINDOWS window-sized buffers beside one step's backward pass
    # (read off XLA:TPU's buffers at the 0.25 deg peaks). Offloaded, the
    # predictions sit in host memory.
    kept_predictions = r * target_bytes
    if remat.offload_rollout:
      host_bytes += kept_predictions
      kept_predictions = 0.0
    activations = KEPT_WINDOWS * carry + kept_predictions + act * (saved + recompute_peak)
  elif remat.rollout_step and r > 1:
    # The step being differentiated is re-materialised under the inner policy.
    activations = live_steps * carry + act * (saved + recompute_peak)
  elif k:
    activations = num_segments * carry + max(k, rest) * (carry + act * saved) + act * recompute_peak
  else:
    activations = r * (carry + act * saved) + act * recompute_peak
  temporary = act * max(
      temporary_elements(a, model, _block(a, model, saving)) * per_batch(a) for a in apps
  )
  if kept.target_copy and r > 1 and not remat.host_targets:
    activations += r * target_bytes
  activations *= kept.heap_overhead
  temporary *= kept.heap_overhead
  return StepCost(
      flops=r * fwd_flops * passes + 10 * n_params / shard,
      bytes_accessed=r * fwd_bytes * passes + weight_reads + update_bytes,
      param_bytes=param_bytes,
      optimizer_bytes=optimizer_bytes,
      gradient_bytes=gradient_bytes,
      data_bytes=data_bytes,
      activation_bytes=activations,
      temporary_bytes=temporary,
      recompute_fraction=extra,
      num_params=n_params,
      host_bytes=host_bytes,
      batch_bytes=batch_bytes,
  )
