"""Resuming an estimation: the run's identity in its output directory, and files that exist only
when finished.

`claim(out, identity, results)` writes `<out>/run.json` (the resolved options and the SHA-256
of the files they name: policy, data) on the first run and refuses a rerun into `out` whose
identity differs while it holds finished results, naming what changed; an equal rerun may then
take each stage's outputs as done. (A run that stopped before finishing anything, on a bad data
file say, is simply replaced: the fixed rerun has nothing to be inconsistent with.)
Each stage writes its result through `files.replacing`, so an interrupted stage leaves nothing
a rerun would mistake for its result.
"""

import hashlib
import json
import os

from nk_keras import files
from nk_keras.errors import UserError

RUN_FILE = "run.json"


def digest(path):
  """SHA-256 of a file, or of a directory's files (names and contents, in sorted order)."""
  h = hashlib.sha256()
  files = [path] if os.path.isfile(path) else sorted(
      os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
  for name in files:
    h.update(os.path.relpath(name, path).encode())
    with open(name, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
  return h.hexdigest()


def claim(out, identity, results):
  """Records `identity` (a JSON-ready dict) as the run in `out`, or checks that it is the one
  recorded there if any of `results` (paths in `out`) exists. Returns True when resuming a run,
  False for a new one."""
  path = os.path.join(out, RUN_FILE)
  identity = json.loads(json.dumps(identity))   # tuples as lists, as they read back
  if os.path.exists(path) and any(os.path.exists(os.path.join(out, r)) for r in results):
    with open(path) as f:
      recorded = json.load(f)
    if recorded != identity:
      changed = differences(recorded, identity)
      raise UserError(f"{out} holds an estimation run with other settings ({'; '.join(changed)}); "
                      f"rerun with the same options to resume it, or choose another --out")
    return True
  with files.replacing(path) as tmp, open(tmp, "w") as f:
    json.dump(identity, f, indent=2)
  return False


def differences(old, new, prefix=""):
  """'name: old -> new' for every leaf that differs between two nested dicts."""
  out = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out += differences(a, b, f"{prefix}{key}.")
    elif a != b:
      out.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return out
