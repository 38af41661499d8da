"""`COMMAND --help`: the command's own flags, one line each.

absl's `--help` prints the docstring of `__main__` (our dispatcher) and the
flags of no module of ours, and exits 1; `--helpfull` lists ours among
absl's, JAX's and TensorFlow's. A command's flags are those defined by our
modules it imports, since only the chosen command is imported.
"""

from __future__ import annotations

import inspect

from absl import flags

HELP_ARGS = ("-h", "-?", "--help", "--helpshort", "-help", "-helpshort")
HELPFULL_ARGS = ("--helpfull", "-helpfull")
_PACKAGE = "graphcast_fdl"
# Fiddle registers our `--config` under its own modules (config, sweep).
_FIDDLE_FLAGS = ("fiddle._src.absl_flags.flags", "fiddle._src.absl_flags.sweep_flag")


def _flag_line(flag) -> tuple[str, str]:
  """('--name=DEFAULT', 'meaning') for one flag."""
  if flag.boolean:
    name = f"--[no]{flag.name}"
    if flag.default:
      name += " (default on)"
    return name, " ".join(flag.help.split())
  if flag.default is None or flag.default == []:
    name = f"--{flag.name}"
  else:
    name = f"--{flag.name}={flag.default_as_str.strip(chr(39))}"
  return name, " ".join(flag.help.split())


_COMMON = "graphcast_fdl.cli.errors"


def own_flags() -> list:
  """Flags defined by our modules, in the order the modules defined them;
  the flags every command shares (`cli.errors`: --debug) come last."""
  seen, ours, common = set(), [], []
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module == _PACKAGE or module in _FIDDLE_FLAGS or module.startswith(f"{_PACKAGE}."):
      for flag in module_flags:
        if flag.name not in seen:
          seen.add(flag.name)
          (common if module == _COMMON else ours).append(flag)
  return ours + common


def command_help(command: str, summary: str, module) -> str:
  """The help text of one command: usage, examples, its flags."""
  lines = [f"usage: graphcast_fdl {command} [--flags]", "", summary]
  doc = inspect.getdoc(module) or ""
  rest = doc.split("\n", 1)[1].strip("\n") if "\n" in doc else ""
  if rest:
    lines += ["", rest]
  rows = [_flag_line(f) for f in own_flags()]
  if rows:
    width = min(max(len(name) for name, _ in rows), 28)
    lines += ["", "flags:"]
    for name, meaning in rows:
      if len(name) > width:
        lines += [f"  {name}", f"  {'':{width}}  {meaning}"]
      else:
        lines.append(f"  {name:{width}}  {meaning}")
  lines += [
      "",
      "--flagfile=FILE reads flags from a file; --verbosity=1 logs "
      "more; --helpfull lists every flag, including absl's and JAX's.",
  ]
  return "\n".join(lines)
