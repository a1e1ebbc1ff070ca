"""examples/quickstart.ipynb runs from top to bottom (nbmake, in a subprocess with its own
kernel): the notebook the documentation renders cannot rot."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join("examples", "quickstart.ipynb")


def test_quickstart_notebook_runs(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  r = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbmake", "--nbmake-timeout=300",
                      "-p", "no:cacheprovider", "-o", "addopts=", NOTEBOOK],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
  assert "1 passed" in r.stdout
