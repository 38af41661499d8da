"""FLOPs and bytes of a compiled HLO module with loop bodies times their trips.

XLA's `cost_analysis` counts the body of a while loop once. Our train step
has loops inside loops (the rollout scan, processor groups, edge and grid
blocks), so its figures undercount by the trips of each. This reads the
optimised HLO text (`compiled.as_text()`) and totals, through the call graph,
with each while body weighted by its trip count (XLA's `known_trip_count`,
or its condition's `counter < N`) and with every body counted once as XLA
does:
  * matmul FLOPs: every dot and convolution (fused ones included);
  * memory bytes: each unfused instruction's operands + result (a fusion's
    operands and result are what it moves through memory; tuples, bitcasts,
    parameters, constants and control flow move nothing), as XLA's cost
    analysis counts "bytes accessed";
  * host bytes: arrays copied between host memory (memory space S(5): the
    rollout's offloaded frames and host-resident targets) and the device.
The weighted / counted-once ratios rescale XLA's own figures (`xla_cost`):
FLOPs by the FLOP ratio and bytes by the byte ratio, since a grid-sized
loop body moves many bytes for few FLOPs and a processor group the reverse.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")
_DIMS = re.compile(r"^[a-z0-9]+\[([\d,]*)\]")
_ARRAY = re.compile(r"\b(pred|[subf]\d+|bf16|f8e\w+)\[([\d,]*)\](\{[^}]*\})?")
_NAME = re.compile(r"%([\w.\-]+)")
_CONST = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = s32\[\]\S* constant\((\d+)\)")
# Host memory space in XLA:TPU layouts (`{1,0:T(8,128)S(5)}`).
_HOST = "S(5)"
# Instructions that move no bytes of their own (aliases, control flow whose
# bodies are counted where they are called, async halves counted at start).
_NO_BYTES = frozenset(
    {
        "parameter",
        "constant",
        "get-tuple-element",
        "tuple",
        "bitcast",
        "while",
        "call",
        "conditional",
        "after-all",
        "partition-id",
        "replica-id",
        "opt-barrier",
        "add-dependency",
        "copy-done",
        "async-done",
        "async-update",
        "send-done",
        "recv-done",
        "all-reduce-done",
        "all-gather-done",
        "collective-permute-done",
    }
)


def _dims(shape: str) -> list[int]:
  m = _DIMS.match(shape)
  return [int(d) for d in m.group(1).split(",") if d] if m else []


def _itemsize(dtype: str) -> float:
  if dtype == "pred":
    return 1.0
  bits = re.search(r"\d+", dtype)
  return int(bits.group()) / 8 if bits else 4.0


def _arrays(shape: str) -> list[tuple[float, bool]]:
  """(bytes, in host memory) of each array of a (tuple) shape."""
  out = []
  for m in _ARRAY.finditer(shape):
    n = math.prod(int(d) for d in m.group(2).split(",") if d)
    out.append((n * _itemsize(m.group(1)), _HOST in (m.group(3) or "")))
  return out


def _operands(rest: str) -> list[str]:
  """Names in an instruction's operand list (up to its closing bracket)."""
  depth = 1
  for i, c in enumerate(rest):
    depth += c == "("
    depth -= c == ")"
    if depth == 0:
      return _NAME.findall(rest[:i])
  return _NAME.findall(rest)


def _computations(text: str) -> tuple[dict, str | None]:
  comps, entry, current = {}, None, None
  for line in text.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m:
        current = m.group(1)
        comps[current] = []
        entry = current if line.startswith("ENTRY") else entry
    elif line.startswith("}"):
      current = None
    else:
      comps[current].append(line)
  return comps, entry


def _trips(rest: str, condition: list[str], unknown: float = 1.0) -> float:
  """A while loop's trip count: XLA's `known_trip_count` where it states it,
  else N of a condition `counter < N` (XLA:TPU), else the condition's one
  integer constant; `unknown` when none of these (a bound the program
  hides from the compiler, as the rollout's backward loop does)."""
  known = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', rest)
  if known:
    return float(known.group(1))
  consts = {m.group(1): int(m.group(2)) for m in map(_CONST.match, condition) if m}
  for line in condition:
    if " compare(" in line and "direction=LT" in line:
      args = line.split("compare(", 1)[1].split(")", 1)[0]
      for name in _NAME.findall(args):
        if name in consts:
          return float(consts[name])
  values = set(consts.values()) - {0}
  return float(values.pop()) if len(values) == 1 else unknown


def _matmul_flops(op: str, out: str, operands: list[str], rest: str, shapes: dict) -> float:
  if op == "dot":
    lhs = _dims(shapes.get(operands[0], "")) if operands else []
    m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
    k = math.prod(lhs[int(i)] for i in m.group(1).split(",") if i) if m and lhs else 1
  else:  # convolution: the kernel's input-feature and window sizes
    rhs = _dims(shapes.get(operands[1], "")) if len(operands) > 1 else []
    m = re.search(r"dim_labels=\w+_(\w+)->", rest)
    k = 1
    if m and len(m.group(1)) == len(rhs):
      k = math.prod(d for c, d in zip(m.group(1), rhs) if c == "i" or c.isdigit())
  return 2.0 * math.prod(_dims(out)) * k


def _size(shape: str) -> float:
  return sum(b for b, _ in _arrays(shape))


# Ops that read only the part of their first operand they return, and the
# one that writes only its update into its first operand, in place.
_SLICING = frozenset({"slice", "dynamic-slice", "gather"})
_VIEWS = frozenset({"bitcast", "reshape", "get-tuple-element"})


class _Fused:
  """One fused computation: which part of each parameter it reads and what
  it writes (XLA's cost analysis counts a slice of a parameter as the
  slice, and a dynamic-update-slice as its update: it runs in place)."""

  def __init__(self, lines: list[str], shapes: dict):
    self.params, self.users, self.instrs, self.root = {}, {}, {}, None
    for line in lines:
      m = _INSTR.match(line)
      if not m:
        continue
      name, out, op, rest = m.group(1), m.group(2), m.group(3), m.group(4)
      operands = _operands(rest)
      self.instrs[name] = (out, op, operands)
      if op == "parameter":
        self.params[int(re.match(r"\s*(\d+)", rest).group(1))] = name
      for i, operand in enumerate(operands):
        self.users.setdefault(operand, []).append((name, op, i))
      if line.lstrip().startswith("ROOT "):
        self.root = name
    self.shapes = shapes

  def read(self, index: int, full: float) -> float:
    name = self.params.get(index)
    return full if name is None else min(full, self._used(name, full))

  def _used(self, name: str, full: float) -> float:
    used = 0.0
    for user, op, position in self.users.get(name, []):
      if op in _VIEWS:
        used += self._used(user, full)
      elif op in _SLICING and position == 0:
        used += _size(self.instrs[user][0])
      elif op == "dynamic-update-slice" and position == 0:
        continue  # updated in place: not read
      else:
        return full
    return used

  def written(self, name: str | None = None) -> float:
    name = self.root if name is None else name
    out, op, operands = self.instrs.get(name, ("", "", []))
    if op == "dynamic-update-slice" and len(operands) > 1:
      return _size(self.instrs.get(operands[1], (self.shapes.get(operands[1], ""),))[0])
    if op in ("tuple", "bitcast"):
      return sum(self.written(o) for o in operands)
    return _size(out)


def _moved(
    op: str, out: str, operands: list[str], rest: str, shapes: dict, fused: dict
) -> tuple[float, float]:
  """(memory bytes, host<->device bytes) one unfused instruction moves."""
  if op in _NO_BYTES:
    return 0.0, 0.0
  results = _arrays(out)
  inputs = [a for name in operands for a in _arrays(shapes.get(name, ""))]
  callee = re.search(r"calls=%([\w.\-]+)", rest)
  body = fused.get(callee.group(1)) if callee else None
  if op == "dynamic-update-slice" and len(operands) > 1:
    update = _size(shapes.get(operands[1], ""))
    return 2 * update, update if results and results[0][1] else 0.0
  if op in _SLICING:
    size = _size(out)
    return 2 * size, size if inputs and inputs[0][1] else 0.0
  if op == "async-start" and body is not None:
    # An asynchronous slice to or from host memory (the rollout's frames).
    _, inner, inner_operands = body.instrs.get(body.root, ("", "", []))
    if inner in ("dynamic-update-slice", "dynamic-slice", "copy"):
      size = body.written()
      on_host = any(h for name in inner_operands[:1] for _, h in _arrays(shapes.get(name, "")))
      return 2 * size, size if on_host or any(h for _, h in results) else 0.0
    return 0.0, 0.0  # collectives: the interconnect, not memory
  if op == "async-start":
    return 0.0, 0.0
  if op == "copy-start":  # (destination, source, context): one array copied
    results = results[:1]
  if op == "fusion" and body is not None:
    read = sum(body.read(i, _size(shapes.get(name, ""))) for i, name in enumerate(operands))
    total = read + body.written()
  else:
    total = sum(b for b, _ in results) + sum(b for b, _ in inputs)
  host = 0.0
  if op in ("copy-start", "copy") and results and inputs:
    if results[0][1] != inputs[0][1]:  # one side in host memory
      host = results[0][0]
  return total, host


@dataclasses.dataclass(frozen=True)
class LoopTotals:
  """A module's figures with loop bodies times their trips (`weighted`) and
  counted once (`once`, as XLA's cost analysis)."""

  flops_weighted: float = 0.0
  flops_once: float = 0.0
  bytes_weighted: float = 0.0
  bytes_once: float = 0.0
  host_bytes_weighted: float = 0.0


def loop_totals(text: str, unknown_trips: float = 1.0) -> LoopTotals:
  """Matmul FLOPs, memory bytes and host bytes of an HLO module's text.

  `unknown_trips`: the trips of a loop whose bound is not a constant (in our
  train step only the rollout's backward loop, `model/rollout.py`, whose
  trips are the rollout length)."""
  comps, entry = _computations(text)
  if entry is None:
    return LoopTotals()
  shapes = {}
  for lines in comps.values():
    for m in map(_INSTR.match, lines):
      if m:
        shapes[m.group(1)] = m.group(2)
  fused = {}
  for lines in comps.values():
    for m in map(_INSTR.match, lines):
      if m and m.group(3) in ("fusion", "async-start"):
        for c in re.findall(r"calls=%([\w.\-]+)", m.group(4)):
          fused[c] = _Fused(comps.get(c, []), shapes)
  own, calls = {}, {}
  for name, lines in comps.items():
    flops = nbytes = host = 0.0
    callees = []  # (computation, trips, runs unfused: its bytes count)
    for m in map(_INSTR.match, lines):
      if not m:
        continue
      out, op, rest = m.group(2), m.group(3), m.group(4)
      operands = _operands(rest)
      if op in ("dot", "convolution"):
        flops += _matmul_flops(op, out, operands, rest, shapes)
      moved, to_host = _moved(op, out, operands, rest, shapes, fused)
      nbytes, host = nbytes + moved, host + to_host
      callees += [(c, 1.0, False) for c in re.findall(r"calls=%([\w.\-]+)", rest)]
      if op == "call":
        callees += [(c, 1.0, True) for c in re.findall(r"to_apply=%([\w.\-]+)", rest)]
      body = re.search(r"body=%([\w.\-]+)", rest)
      if body:
        condition = re.search(r"condition=%([\w.\-]+)", rest)
        trips = _trips(rest, comps.get(condition.group(1), []) if condition else [], unknown_trips)
        callees.append((body.group(1), trips, True))
      branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
      if branches:
        callees += [(c, 1.0, True) for c in _NAME.findall(branches.group(1))]
    own[name], calls[name] = (flops, nbytes, host), callees

  @functools.cache
  def total(name: str, weighted: bool, unfused: bool) -> tuple[float, float, float]:
    flops, nbytes, host = own.get(name, (0.0, 0.0, 0.0))
    if not unfused:  # inside a fusion: only its FLOPs count
      nbytes = host = 0.0
    for callee, trips, runs in calls.get(name, []):
      f, b, h = total(callee, weighted, unfused and runs)
      w = trips if weighted else 1.0
      flops, nbytes, host = flops + w * f, nbytes + w * b, host + w * h
    return flops, nbytes, host

  fw, bw, hw = total(entry, True, True)
  fo, bo, _ = total(entry, False, True)
  return LoopTotals(fw, fo, bw, bo, hw)


def matmul_flops(text: str) -> tuple[float, float]:
  """(loop-weighted, counted-once) dot/convolution FLOPs of an HLO module."""
  t = loop_totals(text)
  return t.flops_weighted, t.flops_once
