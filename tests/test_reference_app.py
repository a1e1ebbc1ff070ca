"""The reference app: solves at a theta and writes its files; no equilibrium is one error line."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_app(*args):
  return subprocess.run([sys.executable, "-m", "apps.reference", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def test_writes_table_summary_and_figure(tmp_path):
  proc = run_app("--theta=rho_zeta=0.8,sigma_zeta=0.015", f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in ("policy.csv", "summary.json", "policy.png"):
    assert (tmp_path / name).exists(), name
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["converged"] and 0 < summary["zlb_frequency"] < 0.2
  assert len((tmp_path / "policy.csv").read_text().splitlines()) == 12


def test_no_stable_equilibrium_is_one_error_line(tmp_path):
  proc = run_app("--theta=rho_zeta=0.9,sigma_zeta=0.025", f"--out={tmp_path}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "no stable equilibrium at" in proc.stderr


def test_rejects_a_theta_outside_the_box(tmp_path):
  proc = run_app("--theta=rho_zeta=0.95", f"--out={tmp_path}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "rho_zeta" in proc.stderr
