"""Each shipped model meets the accuracy bar, measured by plain TensorFlow in a process that
cannot import nk_keras, against a closed form written independently (tests/isolated_check.py)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "tests")
# Bar of the export issue: scale-normalised error in percent.
BAR = {"mean": 0.1, "p95": 0.3, "cal": 0.1}
MODELS = ["nk_fresh", "nk_cached", "nk_internal", "nk_stepping"]


def measure(name, n_theta=20_000, seed=2026):
  path = os.path.join(ROOT, "saved_models", name)
  assert os.path.exists(os.path.join(path, "saved_model.pb")), f"{name} is not shipped"
  proc = subprocess.run([sys.executable, "-I", os.path.join(HERE, "isolated_check.py"), path,
                         str(n_theta), str(seed)], capture_output=True, text=True, timeout=300,
                        cwd=os.path.join(ROOT, "saved_models"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_meets_the_bar(name):
  result = measure(name)
  misses = [f"{policy} {stat} {result[policy][stat]:.4f}% > {limit}%"
            for policy in ("X", "Pi") for stat, limit in BAR.items()
            if result[policy][stat] > limit]
  assert not misses, f"{name}: " + "; ".join(misses)
