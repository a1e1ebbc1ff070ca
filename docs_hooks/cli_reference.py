"""MkDocs hook: the command-line reference, made from the apps' absl flag definitions.

`docs/reference/cli.md` holds the marker below; at build time it is replaced by one section per
app in `nk_keras.apps`, with every flag that app defines (name, type, default, bounds or choices,
help), read from absl's registry after importing the app. So the page can never disagree with
`nk-<app> --help`. Each app's flags are removed from the registry after it is read, since the
apps define some flags of the same name (`--out`).
"""

import importlib
import os
import pkgutil
import sys

# The repository root: the build reads this checkout's apps, installed or not.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MARKER = "<!-- cli-reference -->"


def _first_line(doc):
  for line in (doc or "").strip().splitlines():
    if line.strip():
      return line.strip()
  return ""


def _usage(doc):
  """The indented command lines of an app's docstring (its usage examples)."""
  return [line.strip() for line in (doc or "").splitlines()
          if line.startswith("  ") and line.strip().startswith(("python -m apps.", "nk-"))]


def _kind(flag):
  kind = flag.flag_type()
  parser = flag.parser
  extra = []
  lower, upper = getattr(parser, "lower_bound", None), getattr(parser, "upper_bound", None)
  if lower is not None:
    extra.append(f">= {lower}")
  if upper is not None:
    extra.append(f"<= {upper}")
  return kind, "; ".join(extra)


def _cell(text):
  """One table cell of plain text: `<run>` and the like shown, not read as HTML."""
  text = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
  return text.replace("|", "\\|")


def _default(flag):
  if flag.default is None:
    return "required" if flag.name in _REQUIRED else "none"
  if isinstance(flag.default, bool):
    return "true" if flag.default else "false"
  return f"`{flag.default}`" if str(flag.default) != "" else '`""`'


_REQUIRED = set()


def _section(name):
  """Markdown for the app `nk_keras.apps.<name>`."""
  from absl import flags
  module_name = f"nk_keras.apps.{name}"
  before = set(flags.FLAGS)
  module = importlib.import_module(module_name)
  defined = flags.FLAGS.get_flags_for_module(module_name)
  _REQUIRED.clear()
  for flag in defined:
    # absl marks a required flag with a validator whose message says so.
    for v in getattr(flag, "validators", []):
      if "must have a value other than None" in str(getattr(v, "message", "")):
        _REQUIRED.add(flag.name)
  lines = [f"## `nk-{name}`", "", f"`python -m apps.{name}`, or `nk-{name}` once installed. "
           + _first_line(module.__doc__), ""]
  usage = _usage(module.__doc__)
  if usage:
    lines += ["```bash", *usage, "```", ""]
  lines += ["| flag | type | default | help |", "|---|---|---|---|"]
  for flag in sorted(defined, key=lambda f: f.name):
    kind, extra = _kind(flag)
    help_text = _cell(flag.help) + (f" ({extra})" if extra else "")
    lines.append(f"| `--{flag.name}` | {kind} | {_default(flag)} | {help_text} |")
  lines.append("")
  # Free the names for the next app, and forget the module so a rebuild imports it again.
  for flag_name in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, flag_name)
  sys.modules.pop(module_name, None)
  return "\n".join(lines)


def reference():
  if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)   # ahead of an nk_keras installed from another checkout
  import nk_keras.apps
  assert os.path.dirname(os.path.abspath(nk_keras.apps.__file__)).startswith(ROOT), \
      f"the CLI reference would describe {nk_keras.apps.__file__}, not this checkout's apps"
  names = sorted(m.name for m in pkgutil.iter_modules(nk_keras.apps.__path__))
  order = ["train", "export", "evaluate", "simulate", "estimate", "reference", "existence"]
  names = [n for n in order if n in names] + [n for n in names if n not in order]
  return "\n".join(_section(n) for n in names)


def on_page_markdown(markdown, page, config, files):
  if MARKER not in markdown:
    return markdown
  return markdown.replace(MARKER, reference())
