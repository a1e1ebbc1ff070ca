import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite runs two processes at once (the foreground and tests/background.py's lane), each of
# which would start thread pools as wide as the machine: on 2 cores, 4 busy threads spin against
# each other. One thread an op pool each (inherited by every subprocess): 10:58-13:05 for the
# whole suite against 14:26-15:27 before, 1,200-1,410 s of CPU against 1,520-1,640
# (BUILD_NOTES.md, "Tests").
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import background  # noqa: E402  (tests/, on the path as this file's directory)


def pytest_collection_modifyitems(items):
  """Tests marked `lane` become lane jobs and go last: the lane then has the whole session to
  run them on the core the others leave idle, and the foreground waits for them only at the
  end, if at all."""
  if os.environ.get("NK_SUITE_LANE") == "1":    # already in its own process
    return
  lane = [item for item in items if item.get_closest_marker("lane")]
  for item in lane:
    background.run_in_lane(item, ROOT)
  items[:] = [item for item in items if item not in lane] + lane


def pytest_collection_finish(session):
  """Starts the background lane (tests/background.py) on the jobs the selected tests use."""
  if session.config.option.collectonly:
    return
  background.start(session.items)


def pytest_sessionfinish(session, exitstatus):
  background.stop()


def pytest_terminal_summary(terminalreporter):
  for line in background.report():
    terminalreporter.write_line(f"subprocess jobs (tests/background.py), {line}")


@pytest.fixture(scope="session")
def fresh_run(tmp_path_factory):
  """One short fresh run for the session, trained by `training.run` (test_reliability's
  `short(5)`): `(options, model, run directory)`, the directory holding what `run` writes
  (policy.keras, policy.json, history.csv). Tests read it; one that writes copies it first."""
  from nk_keras import training
  options = training.TrainOptions(regime="fresh", iterations=200, batch=200, seed=5,
                                  steps_per_execution=50)
  out = tmp_path_factory.mktemp("fresh_run") / "run"
  model, _ = training.run(options, str(out), log_every=100, verbose=False)
  return options, model, out
