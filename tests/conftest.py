import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import background  # noqa: E402  (tests/, on the path as this file's directory)


def pytest_collection_finish(session):
  """Starts the background lane (tests/background.py) on the jobs the selected tests use."""
  if session.config.option.collectonly:
    return
  names = set()
  for item in session.items:
    names.update(getattr(item, "fixturenames", ()))
  background.start(names)


def pytest_sessionfinish(session, exitstatus):
  background.stop()


def pytest_terminal_summary(terminalreporter):
  lines = background.report()
  if lines:
    terminalreporter.write_line("background jobs: " + "; ".join(lines))

