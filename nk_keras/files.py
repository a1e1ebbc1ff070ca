"""Outputs that exist only once complete: the export, the ONNX file, each estimation stage.

`replacing(path)` yields a fresh name beside `path` for its block to create (a file or a
directory). When the block completes, what it made takes the place of `path`; when it raises,
what it made is removed and `path` is left as it was. A reader therefore finds either the old
output or the whole new one, and a rerun never mistakes an interrupted write for a result; what
a killed writer left beside `path` is removed by the next one.

`locked(directory)` makes a run the only writer of its output directory.
"""

import contextlib
import errno
import fcntl
import os
import re
import shutil

from nk_keras.errors import ModelError, UserError

LOCK = ".lock"


class InUse(UserError):
  """Another process holds the output directory."""


@contextlib.contextmanager
def locked(directory):
  """Holds an exclusive lock on `directory` (created if needed) for the block: a second run into
  the same directory fails at once with `InUse` instead of interleaving its files with the
  first's. The kernel drops the lock when the process dies, so a killed run leaves none behind.
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, LOCK)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
        raise
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
      raise InUse(f"{directory!r} is in use by another run (process {holder or 'unknown'}); "
                  f"wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    yield directory
  finally:
    os.close(fd)   # releases the lock


@contextlib.contextmanager
def replacing(path):
  path = os.path.abspath(path)
  parent, name = os.path.split(path)
  root, ext = os.path.splitext(name)
  # Per process (runs started together into one directory must not share it), hidden, and with
  # the extension kept: np.savez appends .npz to any other name.
  tmp = os.path.join(parent, f".{root}.partial-{os.getpid()}{ext}")
  remove(tmp)
  remove_stale(parent)
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


# What `replacing` names its work in progress: `.<root>.partial-<pid><ext>`, `.<name>.old-<pid>`.
_WORK = re.compile(r"\.(?:.+\.partial-(\d+)(?:\..*)?|.+\.old-(\d+))")


def remove_stale(directory):
  """Removes what killed writers of `replacing` left in `directory` (a SIGKILL runs no
  cleanup): the work in progress of processes that are gone. A live process's is left alone."""
  try:
    names = os.listdir(directory)
  except OSError:
    return
  for entry in names:
    match = _WORK.fullmatch(entry)
    if match and not alive(int(match.group(1) or match.group(2))):
      remove(os.path.join(directory, entry))


def alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True   # someone else's process
  return True


def writable(directory):
  """Creates `directory` if needed and checks that a file can be written there; a UserError
  naming it otherwise (read-only, no permission, a file in the way). For a check before work
  whose output would be refused only at its end."""
  try:
    os.makedirs(directory, exist_ok=True)
    # One probe per process: processes that share `directory` (workers of one run) may race.
    probe = os.path.join(directory, f".write_test-{os.getpid()}")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f"cannot write to {directory!r}: {e.strerror}") from None
  return directory


def remove(path):
  """Removes a file or a directory tree; nothing if `path` does not exist."""
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def saved_model(path):
  """`path` if it names a SavedModel directory, else a ModelError saying what it is not. Needs
  no TensorFlow: the apps' flag validators call it, so a mistyped path is refused at once."""
  if not os.path.isdir(path):
    raise ModelError(f"no model directory at {path!r}")
  if not os.path.exists(os.path.join(path, "saved_model.pb")):
    raise ModelError(f"{path!r} is not a SavedModel (no saved_model.pb)")
  return path


def finished_run(run):
  """`run` if it is the directory of a finished train-app run (its policy.keras written), else a
  UserError saying what it is. Needs no TensorFlow, like `saved_model`."""
  if not os.path.isdir(run):
    raise UserError(f"no run directory at {run!r}")
  if not os.path.isfile(os.path.join(run, "policy.keras")):
    if os.path.isdir(os.path.join(run, "backup")):
      raise UserError(f"the run in {run!r} is unfinished; rerun its train command to "
                      f"resume and finish it, which also exports it")
    raise UserError(f"{run!r} holds no trained policy (policy.keras): not an apps.train run")
  return run
