"""The SavedModel contract: round trip, loading without nk_keras, the in_box signature."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import accuracy, export

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAMES = ["zeta", "beta", "sigma", "eta", "phi", "phi_pi", "phi_y", "rho_a", "sigma_a"]


@pytest.fixture(scope="module")
def trained(fresh_run, tmp_path_factory):
  _, model, _ = fresh_run   # the session's short fresh run (tests/conftest.py)
  path = str(tmp_path_factory.mktemp("export") / "saved_model")
  export.export(model.policy, path, {"regime": "fresh", "note": "test"})
  return model, path


def test_round_trip_matches_the_in_memory_policy(trained):
  model, path = trained
  theta = accuracy.draw_box(model.economy, 1000, seed=3)
  state = model.economy.ergodic_std(theta) * tf.random.stateless_normal([1000, 1], seed=[1, 2])
  loaded = export.LoadedPolicy(path)
  expected = model.policy(state, theta).numpy()
  # Float32 round-off: a few ulps (1.2e-7) of the largest output, as XLA-free serving and the
  # in-memory call may fuse the arithmetic differently.
  np.testing.assert_allclose(loaded(state, theta).numpy(), expected, rtol=0,
                             atol=1e-6 * np.abs(expected).max())


def test_signature_and_metadata(trained):
  _, path = trained
  fn = tf.saved_model.load(path).signatures["serving_default"]
  inputs = fn.structured_input_signature[1]
  assert sorted(inputs) == sorted(NAMES)
  assert all(s.shape.as_list() == [None] and s.dtype == tf.float32 for s in inputs.values())
  assert sorted(fn.structured_outputs) == ["Pi", "X"]
  meta = json.load(open(os.path.join(path, "assets", "metadata.json")))
  for key in ("regime", "box", "versions", "git_commit", "signature"):
    assert key in meta
  assert meta["box"]["beta"] == [0.95, 0.99]


def test_in_box_flags_theta_outside_the_box(trained):
  _, path = trained
  fn = tf.saved_model.load(path).signatures["in_box"]
  cal = dict(zip(NAMES[1:], [0.97, 2.0, 1.125, 0.7, 1.875, 0.25, 0.875, 0.06]))
  feeds = {k: tf.constant([v, v, v], tf.float32) for k, v in cal.items()}
  feeds["beta"] = tf.constant([0.97, 0.999, 0.97])
  feeds["zeta"] = tf.constant([0.01, 0.01, np.nan])
  np.testing.assert_array_equal(fn(**feeds)["in_box"].numpy(), [True, False, False])


def test_loads_in_a_process_without_nk_keras(trained, tmp_path):
  _, path = trained
  # -I: isolated mode, neither the repository nor PYTHONPATH is on sys.path.
  proc = subprocess.run([sys.executable, "-I", os.path.join(HERE, "isolated_check.py"), path,
                         "500", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert set(result) == {"X", "Pi"} and np.isfinite(result["X"]["mean"])


def test_saved_model_cli_shows_the_signature(trained):
  _, path = trained
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  proc = subprocess.run([cli, "show", "--dir", path, "--tag_set", "serve",
                         "--signature_def", "serving_default"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in NAMES + ["X", "Pi"]:
    assert f"['{name}']" in proc.stdout


@pytest.mark.parametrize("make", ["missing", "empty", "corrupt"])
def test_bad_model_directories_raise_model_error(tmp_path, make):
  path = tmp_path / "m"
  if make != "missing":
    path.mkdir()
  if make == "corrupt":
    (path / "saved_model.pb").write_bytes(b"not a protobuf")
  with pytest.raises(export.ModelError):
    export.LoadedPolicy(str(path))


@pytest.fixture()
def finished_run(tmp_path):
  """A train-app-like run: policy.keras + policy.json, run.json, and an export of it."""
  from nk_keras import economies
  from nk_keras.network import ExtendedPolicy
  run = tmp_path / "run"
  policy = ExtendedPolicy.create(economies.get("nk"), width=8, depth=2)
  policy.save(str(run))
  (run / "run.json").write_text(json.dumps({"regime": "untrained (test)"}))
  export.export(policy, str(run / "saved_model"), {"regime": "untrained (test)"})
  return run


def export_app(*args):
  return subprocess.Popen([sys.executable, "-m", "apps.export", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_export_overwrite_keeps_the_old_model_until_the_new_one_is_written(finished_run,
                                                                             tmp_path):
  """A run that cannot be exported (broken run.json) leaves the SavedModel it would replace
  intact; a good one replaces it whole, with no temporary directory left behind."""
  good = tmp_path / "good"
  shutil.copytree(finished_run, good)
  (finished_run / "run.json").write_text("{ not json")
  old = {p.name: p.read_bytes() for p in (finished_run / "saved_model").iterdir() if p.is_file()}
  procs = [export_app(f"--run={run}", "--overwrite", "--n_theta=100")
           for run in (finished_run, good)]
  (_, err_bad), (_, err_good) = [p.communicate(timeout=300) for p in procs]
  assert procs[0].returncode == 2 and err_bad.splitlines()[-1].startswith("error: "), err_bad
  assert {p.name: p.read_bytes() for p in (finished_run / "saved_model").iterdir()
          if p.is_file()} == old
  assert sorted(os.listdir(finished_run)) == sorted(["policy.keras", "policy.json", "run.json",
                                                     "saved_model"])
  assert procs[1].returncode == 0, err_good[-2000:]
  assert sorted(os.listdir(good)) == sorted(["policy.keras", "policy.json", "run.json",
                                             "saved_model"])
  meta = json.loads((good / "saved_model" / export.METADATA).read_text())
  assert meta["evaluation"]["n_theta"] == 100   # the new export, not the old one


def test_a_recorded_evaluation_replaces_only_the_evaluation(tmp_path):
  """`evaluate --record`: a shipped model measured anew keeps its served graph and training
  record; its metadata's evaluation becomes the new one, with what measured it."""
  model = tmp_path / "nk_cached"
  shutil.copytree(os.path.join(ROOT, "saved_models", "nk_cached"), model)
  before = json.loads((model / "assets" / "metadata.json").read_text())
  assets = sorted(os.listdir(model / "assets"))
  export.record_evaluation(str(model), {"n_theta": 7, "errors_pct": {}}, "python -m apps.evaluate")
  after = json.loads((model / "assets" / "metadata.json").read_text())
  assert after["evaluation"]["n_theta"] == 7 and after["evaluation"]["errors_pct"] == {}
  assert after["evaluation"]["measured_by"]["command"] == "python -m apps.evaluate"
  assert set(after["evaluation"]["measured_by"]) == {"command", "git_commit", "versions"}
  assert {k: v for k, v in after.items() if k != "evaluation"} == {
      k: v for k, v in before.items() if k != "evaluation"}
  assert sorted(os.listdir(model / "assets")) == assets   # no work file left behind
  export.LoadedPolicy(str(model))   # still a policy of the contract
