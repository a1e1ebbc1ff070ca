"""The reference app: solves at a theta and writes its files; no equilibrium is one error line."""

import json
import os
import pathlib
import sys

import pytest

import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference_app(name, *args):
  """The app's run with `args` (--out a fresh directory), its process started in the background
  lane (tests/background.py) while earlier tests run."""
  return background.job(name, [sys.executable, "-m", "apps.reference", *args, "--out={out}"],
                        cwd=ROOT, timeout=120)


RUNS = {"writes": reference_app("reference_writes", "--theta=rho_zeta=0.8,sigma_zeta=0.015"),
        "no_equilibrium": reference_app("reference_no_equilibrium",
                                        "--theta=rho_zeta=0.9,sigma_zeta=0.025"),
        "outside": reference_app("reference_outside", "--theta=rho_zeta=0.95")}


@pytest.fixture()
def reference_writes():
  proc = RUNS["writes"].result()
  return pathlib.Path(RUNS["writes"].out), proc


@pytest.fixture()
def reference_no_equilibrium():
  return RUNS["no_equilibrium"].result()


@pytest.fixture()
def reference_outside():
  return RUNS["outside"].result()


def test_writes_table_summary_and_figure(reference_writes):
  out, proc = reference_writes
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in ("policy.csv", "summary.json", "policy.png"):
    assert (out / name).exists(), name
  summary = json.loads((out / "summary.json").read_text())
  assert summary["converged"] and 0 < summary["zlb_frequency"] < 0.2
  assert len((out / "policy.csv").read_text().splitlines()) == 12


def test_no_stable_equilibrium_is_one_error_line(reference_no_equilibrium):
  proc = reference_no_equilibrium
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "no stable equilibrium at" in proc.stderr


def test_rejects_a_theta_outside_the_box(reference_outside):
  proc = reference_outside
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "rho_zeta" in proc.stderr
