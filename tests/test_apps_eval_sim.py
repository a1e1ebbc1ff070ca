"""The evaluate and simulate apps (files written, clean failures) and the simulation library."""

import csv
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import background
from nk_keras import economies, export, simulation
from nk_keras.network import ExtendedPolicy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NK = economies.get("nk")
PNG = b"\x89PNG\r\n\x1a\n"
# TensorFlow 2.21 writes native start-up logs (absl C++ logging, before TF_CPP_MIN_LOG_LEVEL can
# act) straight to fd 2; they are TF's, not the app's, so the one-line check skips them.
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog"
                      r"|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] )")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
  """A train-app-like run directory: `saved_model/` (an untrained tiny net) and `history.csv`."""
  run = tmp_path_factory.mktemp("run")
  policy = ExtendedPolicy.create(NK, width=8, depth=2)
  export.export(policy, str(run / "saved_model"), metadata={"regime": "untrained (test)"})
  with open(run / "history.csv", "w") as f:
    f.write("step,loss,mse_X,mse_Pi,lr,wall_s\n")
    for i in range(5):
      f.write(f"{1000 * (i + 1)},{10.0 ** -i},{0.6 * 10.0 ** -i},{0.4 * 10.0 ** -i},{1e-3 / (i + 1)},{i}\n")
  return run


def app(name, *args):
  return subprocess.run([sys.executable, "-m", f"apps.{name}", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def app_lines(stderr):
  return [line for line in stderr.splitlines() if line.strip() and not TF_NOISE.match(line)]


def assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == PNG, path
  assert os.path.getsize(path) > 10_000, path   # a drawn figure, not an empty canvas


def read_csv(path):
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  return rows[0], np.array(rows[1:], float)


@pytest.fixture(scope="session")
def not_a_model(tmp_path_factory):
  path = tmp_path_factory.mktemp("not_a_model")
  (path / "notes.txt").write_text("no SavedModel here\n")
  return path


SIMULATE_ARGS = ["--periods=50", "--irf_periods=12", "--moment_chains=50", "--moment_periods=20",
                 "--theta=rho_a=0.9,phi_pi=1.5"]


def planned_run(item, run_dir, not_a_model):
  """The app run test `item` of this file makes, `(app, args)` as `app` takes them (`{out}`: a
  fresh directory of the run's own), or None."""
  model = run_dir / "saved_model"
  name = getattr(item, "originalname", None)
  if name == "test_evaluate_writes_tables_and_figures":
    return "evaluate", [f"--model={model}", "--n_theta=500"]
  if name == "test_simulate_writes_paths_irf_and_moments":
    return "simulate", [f"--model={model}", "--out={out}/sim", *SIMULATE_ARGS]
  if name == "test_bad_input_fails_with_one_line":
    p = item.callspec.params
    return p["name"], [a.format(tmp="{out}", not_a_model=not_a_model, model=model)
                       for a in p["args"]] + ["--out={out}/out"]
  return None


@pytest.fixture(scope="module")
def app_runs(run_dir, not_a_model, request):
  """The selected tests' app runs, started together once `run_dir` exists, each its own process
  as `app` runs it (most of their time is TensorFlow's import): test name -> `background.Job`."""
  runs = {}
  for item in request.session.items:
    if item.module is request.module:
      plan = planned_run(item, run_dir, not_a_model)
      if plan:
        runs[item.name] = background.launch(
            f"eval_sim_{item.name}", [sys.executable, "-m", f"apps.{plan[0]}", *plan[1]],
            cwd=ROOT, timeout=300)
  return runs


def app_run(runs, request):
  """This test's app run: (its `{out}` directory, the `CompletedProcess`)."""
  job = runs[request.node.name]
  result = job.result()
  return (pathlib.Path(job.out) if job.out else None), result


def test_evaluate_writes_tables_and_figures(run_dir, app_runs, request):
  model = str(run_dir / "saved_model")
  _, result = app_run(app_runs, request)
  assert result.returncode == 0, result.stderr
  assert "| all levels |" in result.stdout
  out = model + "_evaluation"   # the documented default: a sibling of the model directory
  with open(os.path.join(out, "evaluation.json")) as f:
    report = json.load(f)
  assert report["n_theta"] == 500 and set(report["errors_pct"]) == {"X", "Pi"}
  assert os.path.getsize(os.path.join(out, "evaluation.md")) > 0
  for png in ("policy_X.png", "policy_Pi.png", "errors.png", "loss.png"):
    assert_png(os.path.join(out, png))


def test_simulate_writes_paths_irf_and_moments(app_runs, request):
  base, result = app_run(app_runs, request)
  out = base / "sim"
  assert result.returncode == 0, result.stderr
  columns = ["period", "zeta", "X_nn", "Pi_nn", "X_exact", "Pi_exact"]
  header, sim = read_csv(out / "simulation.csv")
  assert header == columns and sim.shape == (50, 6) and np.isfinite(sim).all()
  header, irf = read_csv(out / "irf.csv")
  assert header == columns and irf.shape == (12, 6)
  np.testing.assert_allclose(irf[1:, 1] / irf[:-1, 1], 0.9, rtol=1e-5)  # the override is used
  with open(out / "moments.json") as f:
    moments = json.load(f)
  assert moments["theta"]["rho_a"] == 0.9 and moments["theta"]["beta"] == 0.97
  for source in ("network", "closed_form_simulated", "analytical"):
    assert {"std_X", "std_Pi", "autocorr_X", "autocorr_Pi", "corr_X_Pi"} <= set(moments[source])
  for png in ("simulation.png", "irf.png"):
    assert_png(out / png)


@pytest.mark.parametrize("name,args,expected", [
    ("evaluate", ["--model={tmp}/missing"], "no model directory"),
    ("evaluate", ["--model={not_a_model}"], "not a SavedModel"),
    ("simulate", ["--model={model}", "--theta=beta=2.0"], "outside the training box"),
    ("simulate", ["--model={model}", "--theta=beta=nan"], "not a finite number"),
    ("simulate", ["--model={model}", "--theta=foo=1"], "unknown parameter"),
    ("simulate", ["--model={model}", "--periods=abc"], "--periods"),
])
def test_bad_input_fails_with_one_line(name, args, expected, app_runs, request):
  _, result = app_run(app_runs, request)   # `app(name, *args, --out)`, args as planned_run fills them
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  assert result.returncode == 2   # absl's flag errors too (README, "When things go wrong")
  lines = app_lines(result.stderr)
  assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
  assert expected in lines[0], result.stderr


def closed_form(state, theta):
  return NK.closed_form(state, theta)


@pytest.mark.parametrize("overrides", [{}, {"rho_a": 0.95, "sigma_a": 0.1, "phi_pi": 1.25}])
def test_simulated_moments_of_the_closed_form_match_the_analytical_ones(overrides):
  theta = NK.theta_from(overrides)
  chains, periods = 2000, 200
  m = simulation.moments(NK, closed_form, theta, chains=chains, periods=periods, seed=3)
  sim, exact = m["network"], m["analytical"]
  rho = float(theta[NK.param_names.index("rho_a")])
  n = chains * periods
  # Sampling error of an AR(1) with persistence rho over n points (chains start in the ergodic
  # distribution, so every point is stationary): the sample std has relative standard error
  # sqrt((1 + rho^2) / (2 n (1 - rho^2))) and the lag-1 autocorrelation standard error
  # sqrt((1 - rho^2) / n) (Bartlett). 5 standard errors: a correct simulation fails with
  # probability < 1e-6, while the usual bugs (a step too many or too few, a wrong innovation
  # scale) move these moments by several percent, i.e. > 10 standard errors here.
  std_tol = 5 * np.sqrt((1 + rho ** 2) / (2 * n * (1 - rho ** 2)))
  ac_tol = 5 * np.sqrt((1 - rho ** 2) / n)
  for name in ("zeta", "X", "Pi"):
    assert abs(sim[f"std_{name}"] / exact[f"std_{name}"] - 1) < std_tol, (name, sim, exact)
    assert abs(sim[f"autocorr_{name}"] - exact[f"autocorr_{name}"]) < ac_tol, (name, sim, exact)
  assert exact["autocorr_X"] == pytest.approx(rho, rel=1e-6)
  # X and Pi are exact multiples of the same state: correlation 1 up to float32 round-off.
  assert sim["corr_X_Pi"] == pytest.approx(exact["corr_X_Pi"], abs=1e-6)
  # Same simulated states for both: the closed form as "network" reproduces it exactly.
  assert m["network"] == m["closed_form_simulated"]


def test_analytical_moments_follow_model_md():
  theta = NK.calibration.astype(np.float32)
  m = simulation.analytical_moments(NK, theta)
  p = dict(zip(NK.param_names, NK.calibration))
  kappa = (1 - p["phi"]) * (1 - p["phi"] * p["beta"]) * (p["sigma"] + p["eta"]) / p["phi"]
  rho, beta = p["rho_a"], p["beta"]
  D = (p["sigma"] * (1 - rho) + p["phi_y"]) * (1 - beta * rho) + kappa * (p["phi_pi"] - rho)
  s_eps = p["sigma_a"] * p["sigma"] * (rho - 1) * (1 + p["eta"]) / (p["sigma"] + p["eta"])
  sigma_erg = abs(s_eps) / np.sqrt(1 - rho ** 2)
  assert m["std_X"] == pytest.approx((1 - beta * rho) / D * sigma_erg, rel=1e-5)
  assert m["std_Pi"] == pytest.approx(kappa / D * sigma_erg, rel=1e-5)
  assert m["corr_X_Pi"] == 1.0


def test_impulse_response_of_the_closed_form():
  theta = NK.calibration.astype(np.float32)
  irf = simulation.impulse_response(NK, closed_form, theta, horizon=6)
  p = dict(zip(NK.param_names, NK.calibration))
  s_eps = p["sigma_a"] * p["sigma"] * (p["rho_a"] - 1) * (1 + p["eta"]) / (p["sigma"] + p["eta"])
  # One innovation std up, then the AR(1) with no further shocks.
  np.testing.assert_allclose(irf["zeta"], abs(s_eps) * p["rho_a"] ** np.arange(6), rtol=1e-5)
  np.testing.assert_allclose(irf["X_nn"], irf["X_exact"], rtol=1e-6)


def test_simulated_path_is_one_policy_call_on_the_state_path():
  calls = []

  def counting(state, theta):
    calls.append(int(state.shape[0]))
    return closed_form(state, theta)

  theta = NK.calibration.astype(np.float32)
  table = simulation.simulate(NK, counting, theta, periods=30, seed=1, start="zero")
  assert calls == [30] and table["zeta"][0] == 0.0   # the network never runs per period
  np.testing.assert_allclose(table["X_nn"], table["X_exact"], rtol=1e-6)
  # Consecutive states follow the AR(1): the implied innovations are standard-normal sized.
  p = NK.unpack(tf.constant(NK.calibration[None], tf.float32))
  rho, s_eps = float(p["rho_a"][0]), float(NK.innovation_scale(p)[0])
  eps = (table["zeta"][1:] - rho * table["zeta"][:-1]) / s_eps
  assert 0.5 < np.std(eps) < 1.5 and np.all(np.abs(eps) < 5)
