"""Every regime learns, the train app works end to end and rejects bad flags."""

import json
import os
import subprocess
import sys

import pytest

from nk_keras import accuracy, training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A regime that does not learn (the seed's `train!`: ~100 % error) or learns the wrong economy
# (a state/theta mismatch) stays far above this; a working one reaches ~1-3 % in these few
# hundred thousand point-steps (measured: see BUILD_NOTES.md, "short runs").
LEARNS_BELOW_PCT = 10.0
SHORT = dict(mc=2, lr=3e-3, eta_min=3e-6, seed=1)


@pytest.mark.parametrize("regime,options", [
    ("fresh", dict(iterations=3000)),
    ("cached", dict(iterations=3000, pool=20_000)),
    ("internal", dict(iterations=600, internal=5)),
    ("stepping", dict(iterations=600, internal=5, num_steps=10, redraw_every=1)),
])
def test_every_regime_learns(regime, options):
  opts = training.TrainOptions(regime=regime, **SHORT, **options)
  model = training.build_regime(opts)
  history = training.fit(model, opts, verbose=False)
  loss = history.history["loss"]
  assert loss[-1] < loss[0]
  report = accuracy.evaluate(model.economy, model.policy, n_theta=2000)
  for name, stats in report["errors_pct"].items():
    assert stats["mean"] < LEARNS_BELOW_PCT, (regime, name, stats)


def run_app(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "apps.train", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)


def test_train_app_end_to_end(tmp_path):
  out = tmp_path / "run"
  proc = run_app("--regime=stepping", "--iterations=40", "--internal=2", "--mc=2",
                 "--eval_theta=500", "--log_every=20", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in ("policy.keras", "policy.json", "history.csv", "evaluation.json",
               "evaluation.md", "saved_model/saved_model.pb",
               "saved_model/assets/metadata.json"):
    assert (out / name).exists(), name
  meta = json.loads((out / "saved_model/assets/metadata.json").read_text())
  assert meta["regime"] == "stepping" and meta["options"]["internal"] == 2
  assert "--iterations=40" in meta["command"]
  assert "X" in proc.stdout and "Pi" in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (["--regime=magic"], "regime"),
    (["--iterations=abc"], "iterations"),
    (["--mc=3"], "mc"),
    (["--batch=0"], "batch"),
    (["--lr=0.001", "--eta_min=0.01"], "eta_min"),
    (["--pool=10", "--batch=100"], "pool"),
    (["--out=/proc/forbidden"], "cannot write"),
])
def test_train_app_rejects_bad_flags(args, needle):
  proc = run_app(*args, timeout=120)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert needle in proc.stderr
