"""Resuming an estimation: the run's identity in its output directory, and files that exist only
when finished.

`claim(out, identity, results, refit, redone)` writes `<out>/run.json` (the resolved options and
the SHA-256 of the files they name: policy, data) on the first run and refuses a rerun into
`out` whose identity differs while it holds finished results, naming what changed; an equal
rerun may then take each stage's outputs as done. A rerun that changes only `refit` options
(the surrogate's and the sampler's: they do not enter the likelihood datasets, the expensive
part) keeps the datasets and deletes the `redone` results first, so their stages run again.
(A run that stopped before finishing anything, on a bad data file say, is simply replaced: the
fixed rerun has nothing to be inconsistent with.)
Each stage writes its result through `files.replacing`, so an interrupted stage leaves nothing
a rerun would mistake for its result.
"""

import hashlib
import json
import os
import shutil

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


def claim(out, identity, results, refit=(), redone=()):
  """Records `identity` (a JSON-ready dict with the options under "options") as the run in
  `out`, or checks it against the one recorded there if any of `results` (paths in `out`)
  exists: equal, or differing only in `refit` options, after which the `redone` paths are
  deleted. Returns True when resuming a run, False for a new one."""
  path = os.path.join(out, RUN_FILE)
  identity = json.loads(json.dumps(identity))   # tuples as lists, as they read back
  resuming = os.path.exists(path) and any(os.path.exists(os.path.join(out, r)) for r in results)
  if resuming:
    with open(path) as f:
      recorded = json.load(f)
    changed = differences(recorded, identity)
    if not changed:
      return True
    text = "; ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in changed.items())
    if not all(key.startswith("options.") and key[len("options."):] in refit
               for key in changed):
      raise UserError(f"{out} holds an estimation run with other settings ({text}); rerun with "
                      f"the same options to resume it, or choose another --out")
    print(f"{out}: only the surrogate's or the sampler's settings changed ({text}); the "
          f"likelihood datasets are kept, the surrogates and chains fitted again")
    for r in redone:
      target = os.path.join(out, r)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
  with files.replacing(path) as tmp, open(tmp, "w") as f:
    json.dump(identity, f, indent=2)
  return resuming


def differences(old, new, prefix=""):
  """{"a.b": (old, new)} for every leaf that differs between two nested dicts."""
  out = {}
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out.update(differences(a, b, f"{prefix}{key}."))
    elif a != b:
      out[f"{prefix}{key}"] = (a, b)
  return out
