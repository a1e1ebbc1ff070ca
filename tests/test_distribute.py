"""Training under tf.distribute: mirrored on 2 logical CPU devices, two workers on 127.0.0.1.

Logical devices must be configured before TF initialises its devices, so every distributed run
is a subprocess (tests/distributed_check.py or the train app).
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import background
from nk_keras.export import LoadedPolicy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tests", "distributed_check.py")
# Summing two float32 gradients in another order than one device differs by ~1e-5 relative
# (measured 7e-6 to 1e-5); a wrong scale (the sum, not the mean) is off by 100 %.
GRAD_RTOL = 1e-4
SMALL = ["--regime=stepping", "--iterations=60", "--internal=2", "--batch=200", "--mc=2",
         "--log_every=40", "--eval_theta=200"]


# The two checks run in the background lane (tests/background.py): each is a process of its own,
# as before, started while earlier tests run.
CHECKS = {mode: background.job(f"{mode}_check", [sys.executable, CHECK, mode], cwd=ROOT,
                               timeout=600) for mode in ("mirrored", "one_replica")}


def run_check(mode):
  proc = CHECKS[mode].result()
  assert proc.returncode == 0, proc.stderr[-3000:]
  return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture()
def mirrored_check():
  return run_check("mirrored")


@pytest.fixture()
def one_replica_check():
  return run_check("one_replica")


def test_mirrored_every_regime_learns_from_its_own_draws(mirrored_check):
  results = mirrored_check
  assert [r["regime"] for r in results] == ["fresh", "cached", "internal", "stepping"]
  for r in results:
    assert r["replicas"] == 2 and r["batch"] == 100, r           # --batch 200 is global
    assert r["steps"] == 300, r
    # Each replica draws its own parameters, states and shocks: no value in common.
    assert r["shared_theta"] == r["shared_state"] == r["shared_eps"] == 0, r
    assert r["grad_rel_error"] < GRAD_RTOL, r                    # gradient of the global mean
    loss = r["loss"]
    assert loss[-1] < 0.05 * loss[0], r                          # 28-34 -> 0.25-0.29 measured
    if r["regime"] in ("internal", "stepping"):
      assert r["shared_persistent_state"] == 0, r                # each replica keeps its batch


def test_one_replica_gives_the_numbers_of_the_default_path(one_replica_check):
  assert one_replica_check == [{"cached": True, "stepping": True}]


def train_app(*args, env=None):
  return subprocess.Popen([sys.executable, "-m", "apps.train", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_exported(out):
  policy = LoadedPolicy(str(out / "saved_model"))
  theta = np.array([[0.97, 2.0, 1.125, 0.7, 1.875, 0.25, 0.875, 0.06]], np.float32)
  assert np.isfinite(policy(np.array([[0.01]], np.float32), theta).numpy()).all()
  return json.loads((out / "saved_model/assets/metadata.json").read_text())


MIRRORED_APP = background.job(
    "mirrored_app_run", [sys.executable, "-m", "apps.train", *SMALL, "--strategy=mirrored",
                         "--cpu_devices=2", "--out={out}/run"], cwd=ROOT, timeout=300)


@pytest.fixture()
def mirrored_app_run():
  proc = MIRRORED_APP.result()
  return pathlib.Path(MIRRORED_APP.out) / "run", proc


def test_mirrored_app_exports_the_contract(mirrored_app_run):
  out, proc = mirrored_app_run
  stdout, stderr = proc.stdout, proc.stderr
  assert proc.returncode == 0, stderr[-3000:]
  assert "note: 2 replicas run without XLA" in stdout
  meta = assert_exported(out)
  assert meta["strategy"] == "mirrored" and meta["replicas"] == 2
  assert not (out / "backup").exists()


def test_batch_must_split_evenly(tmp_path):
  proc = train_app("--strategy=mirrored", "--cpu_devices=2", "--batch=201",
                   f"--out={tmp_path / 'run'}")
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert "Traceback" not in stderr and "error: --batch (201) must be a multiple" in stderr


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_workers(tmp_path, *args, started=2):
  """The first `started` of two workers of one cluster, each with its own --out (as on two
  machines)."""
  cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
  procs = []
  for i in range(started):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}}))
    procs.append(train_app(*args, "--strategy=multi_worker", f"--out={tmp_path / f'w{i}'}",
                           env=env))
  return procs


def finish(proc, timeout):
  try:
    stdout, stderr = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    pytest.fail("a worker hung")
  return proc.returncode, stdout, stderr


# Several training processes at once (2.5 minutes of the suite on 2 cores): slow, run with
# `pytest -m slow`; one replica's bitwise equality and the mirrored checks stay in the default run.
MULTI_WORKER = pytest.mark.slow


@MULTI_WORKER
def test_two_workers_finish_and_only_the_chief_writes(tmp_path):
  chief, worker = start_workers(tmp_path, *SMALL)
  results = [finish(p, 300) for p in (chief, worker)]
  for code, _, stderr in results:
    assert code == 0, stderr[-3000:]
  assert "worker worker-1 done" in results[1][1]
  meta = assert_exported(tmp_path / "w0")
  assert meta["strategy"] == "multi_worker" and meta["replicas"] == 2
  assert len((tmp_path / "w0" / "history.csv").read_text().splitlines()) == 1 + 3
  # The other worker's private checkpoints are gone, and it wrote nothing else.
  assert sorted(os.listdir(tmp_path / "w1")) == []


@MULTI_WORKER
def test_a_dead_worker_fails_the_run_with_a_clear_error(tmp_path):
  chief, worker = start_workers(tmp_path, "--regime=fresh", "--iterations=100000",
                                "--batch=200", "--log_every=20", "--worker_timeout=30")
  history = tmp_path / "w0" / "history.csv"
  deadline = time.time() + 240
  while not history.exists() and time.time() < deadline and chief.poll() is None:
    time.sleep(0.2)
  assert history.exists(), "training never started"
  worker.kill()
  worker.wait()
  code, _, stderr = finish(chief, 120)
  assert code == 2, stderr[-3000:]
  assert "error: another worker died or stopped answering" in stderr
  assert not (tmp_path / "w0" / "saved_model").exists()


@MULTI_WORKER
def test_a_worker_that_never_comes_fails_the_run_within_the_timeout(tmp_path):
  (chief,) = start_workers(tmp_path, *SMALL, "--worker_timeout=10", started=1)
  start = time.time()
  code, _, stderr = finish(chief, 120)
  assert code != 0
  assert "error: not every worker of TF_CONFIG answered within --worker_timeout=10" in stderr
  assert time.time() - start < 90
