"""Outputs that exist only once complete: the export, the ONNX file, each estimation stage.

`replacing(path)` yields a fresh name beside `path` for its block to create (a file or a
directory). When the block completes, what it made takes the place of `path`; when it raises,
what it made is removed and `path` is left as it was. A reader therefore finds either the old
output or the whole new one, and a rerun never mistakes an interrupted write for a result.
"""

import contextlib
import os
import shutil


@contextlib.contextmanager
def replacing(path):
  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  root, ext = os.path.splitext(name)
  # Per process (runs started together into one directory must not share it), hidden, and with
  # the extension kept: np.savez appends .npz to any other name.
  tmp = os.path.join(parent, f".{root}.partial-{os.getpid()}{ext}")
  remove(tmp)
  try:
    yield tmp
  except BaseException:
    remove(tmp)
    raise
  if os.path.isdir(path):
    # POSIX renames a directory only over an empty one: two renames, between which `path` is
    # missing for an instant but never half written.
    old = os.path.join(parent, f".{name}.old-{os.getpid()}")
    remove(old)
    os.replace(path, old)
    os.replace(tmp, path)
    remove(old)
  else:
    os.replace(tmp, path)


def remove(path):
  """Removes a file or a directory tree; nothing if `path` does not exist."""
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)
