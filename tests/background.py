"""A background lane for the suite's long, self-contained subprocess checks.

A test module declares such a check with `job(name, argv, ...)` at import; `name` is the fixture
that hands the check's result to the tests (or `fixture=` names it). Once collection is done,
conftest.py starts one thread that runs the jobs some selected test needs, one at a time, in the
order they were declared (the order of the test files, so the first needed comes first), while the
tests run in the foreground. `Job.result()` returns the finished job's `CompletedProcess`; it
runs the job there and then if the lane has not reached it yet, and while it runs elsewhere,
runs the lane's next jobs itself rather than wait idle, while fewer jobs run than there are cores.

The command, its working directory, environment and isolation are those the test ran before; only
when it runs changes. On two cores the lane takes the core the foreground leaves idle while it
imports TensorFlow, compiles a graph or waits on a subprocess of its own.

A check that needs something a fixture makes first (a model the tests train) is `launch`ed by that
fixture instead: it starts at once if one of two slots beside the lane is free.

An argument may hold `{out}`: a fresh directory, made when the job starts (`Job.out`) and removed
at the end of the session.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

JOBS = {}                      # name -> Job, in declaration order
_changed = threading.Condition()
_CORES = os.cpu_count() or 1
_state = {"stopping": False, "thread": None, "wanted": []}


class Job:

  def __init__(self, name, argv, cwd, timeout, env=None, fixture=None, needs=None, prepare=None):
    self.name, self.argv, self.cwd, self.timeout, self.env = name, list(argv), cwd, timeout, env
    self.fixture = fixture or name
    self.needs = needs         # item -> bool: which tests need it (default: its fixture's users)
    self.prepare = prepare     # out -> None: writes what the command reads, before it starts
    self.state = "pending"     # pending -> running -> done (or cancelled at the session's end)
    self.where = None          # "background", "foreground" or "launched": who ran it
    self.out = None
    self.seconds = None        # wall time of its run, for the session's report
    self._proc = None
    self._outcome = None       # a CompletedProcess, or the exception to raise

  def wanted_by(self, item):
    return self.fixture in getattr(item, "fixturenames", ()) and (
        self.needs is None or self.needs(item))

  def result(self):
    """The finished run: `subprocess.CompletedProcess` (raises `subprocess.TimeoutExpired` as
    `subprocess.run` would). While it runs elsewhere, the caller runs the lane's next jobs
    rather than wait idle, but only while fewer jobs run than there are cores: a third process
    on two busy cores only delays the tests' return."""
    with _changed:
      run_here = self.state == "pending"
      if run_here:
        self.state = "running"
    if run_here:
      self._execute("foreground")
    while True:
      with _changed:
        if self.state == "done":
          break
        if self.state == "cancelled":
          raise RuntimeError(f"background job {self.name} was cancelled")
        other = next((j for j in _state["wanted"] if j.state == "pending"), None)
        if other is None or sum(j.state == "running" for j in JOBS.values()) >= _CORES:
          _changed.wait()
          continue
        other.state = "running"
      other._execute("foreground")
    if isinstance(self._outcome, BaseException):
      raise self._outcome
    return self._outcome

  def _execute(self, where):
    self.where = where
    start = time.monotonic()
    try:
      if any("{out}" in a for a in self.argv) or self.prepare:
        self.out = tempfile.mkdtemp(prefix=f"nk-suite-{self.name}-")
      if self.prepare:
        self.prepare(self.out)
      argv = [a.replace("{out}", self.out or "") for a in self.argv]
      self._proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
      if _state["stopping"]:     # the session ended while it started
        self._proc.kill()
      try:
        stdout, stderr = self._proc.communicate(timeout=self.timeout)
      except subprocess.TimeoutExpired as e:
        self._proc.kill()
        e.stdout, e.stderr = self._proc.communicate()
        raise
      outcome = subprocess.CompletedProcess(argv, self._proc.returncode, stdout, stderr)
    except BaseException as e:   # noqa: BLE001 - handed to whoever asks for the result
      outcome = e
    with _changed:
      self._outcome, self.state = outcome, "done"
      self.seconds = time.monotonic() - start
      _changed.notify_all()


def job(name, argv, cwd, timeout, env=None, fixture=None, needs=None, prepare=None):
  """Declares a job (once: a module imported twice gets the first declaration back). It is
  started for the selected tests that use `fixture` (default `name`) and, if `needs` is given,
  for which `needs(item)` is true (one case of a parametrized test); `prepare(out)` runs first."""
  if name not in JOBS:
    JOBS[name] = Job(name, argv, cwd, timeout, env, fixture, needs, prepare)
  return JOBS[name]


def run_in_lane(item, root):
  """Makes the test `item` a job: its own pytest process (`NK_SUITE_LANE=1`), which the lane
  runs in the order of the tests; the item then only reports that process's outcome. For
  in-process tests that train for tens of seconds and share nothing with the others: they ran
  on one core while the lane's subprocesses took the other."""
  env = dict(os.environ, NK_SUITE_LANE="1")
  j = job(item.nodeid, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-o", "addopts=", "--no-header", item.nodeid], root, 1800, env,
          fixture=item.nodeid, needs=lambda other: other is item)

  def outcome():
    done = j.result()
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode == 0 and " skipped" in summary and " passed" not in summary:
      pytest.skip(f"skipped in its own process: {summary}")
    assert done.returncode == 0 and " passed" in summary, (
        f"the test failed in its own process (tests/background.py, exit {done.returncode}):\n"
        f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}")

  item.fixturenames = [*item.fixturenames, item.nodeid]
  item.setup = lambda: None          # its fixtures are made in its own process
  item.runtest = outcome


def param(item, name):
  """The value of a parametrized test's argument `name` (None if it has none): for `needs`."""
  callspec = getattr(item, "callspec", None)
  return callspec.params.get(name) if callspec else None


_launched = threading.BoundedSemaphore(2)   # launched jobs running at once, beside the lane


def launch(name, argv, cwd, timeout, env=None):
  """Starts a job as soon as one of two slots beside the lane is free, on its own thread: for
  checks that need something the tests make first. Its `result()` waits for it, or runs it if it
  has not started yet."""
  j = job(name, argv, cwd, timeout, env)

  def run():
    with _launched:
      with _changed:
        if j.state != "pending" or _state["stopping"]:
          return
        j.state = "running"
      j._execute("launched")

  threading.Thread(target=run, name=name, daemon=True).start()
  return j


def start(items):
  """Starts the lane on the jobs the selected test `items` need, in the order the tests need
  them (a job's place is that of the first test that uses it)."""
  first = {}
  for i, item in enumerate(items):
    for j in JOBS.values():
      if j.name not in first and j.wanted_by(item):
        first[j.name] = i
  wanted = sorted((JOBS[name] for name in first), key=lambda j: first[j.name])
  if not wanted or _state["thread"] is not None:
    return
  _state["wanted"] = wanted

  def lane():
    for j in wanted:
      with _changed:
        if _state["stopping"]:
          return
        if j.state != "pending":
          continue
        j.state = "running"
      j._execute("background")

  _state["thread"] = threading.Thread(target=lane, name="background-jobs", daemon=True)
  _state["thread"].start()


def stop():
  """Ends the session's jobs: those not started are cancelled, a running one is killed, their
  directories removed."""
  with _changed:
    _state["stopping"] = True
    for j in JOBS.values():
      if j.state == "pending":
        j.state = "cancelled"
      elif j.state == "running" and j._proc is not None and j._proc.poll() is None:
        j._proc.kill()
    _changed.notify_all()
  if _state["thread"] is not None:
    _state["thread"].join(timeout=30)
  for j in JOBS.values():
    if j.out:
      shutil.rmtree(j.out, ignore_errors=True)


def report():
  """Where the jobs that ran ran: one line per place, with their names and wall times."""
  where = {}
  for j in JOBS.values():
    if j.state == "done":
      where.setdefault(j.where, []).append(f"{j.name} {j.seconds:.0f} s")
  return [f"{len(names)} {place}: {', '.join(names)}" for place, names in sorted(where.items())]
