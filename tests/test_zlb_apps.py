"""The evaluate and simulate apps on rank_zlb (reference: time iteration), and the ZLB statistics
they report: a policy equal to the reference scores ~0, a shifted one does not."""

import json
import math
import os
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

import background
from nk_keras import accuracy, constraint, economies, export, simulation, training
from nk_keras.economies import rank_zlb
from tests.test_apps_eval_sim import ROOT, app_lines, assert_png, read_csv

ZLB = economies.get("rank_zlb")


@pytest.fixture(scope="module")
def zlb_model(tmp_path_factory):
  """A rank_zlb SavedModel trained briefly (a small network, 150 gradient steps): far from
  accurate, but a real policy of the export contract."""
  options = training.TrainOptions(economy="rank_zlb", regime="fresh", iterations=150,
                                  stratified=True, unbiased=True, mc=4, batch=256, width=32,
                                  depth=3, steps_per_execution=50, jit_compile=False)
  model = training.build_regime(options)
  training.fit(model, options, verbose=False)
  path = str(tmp_path_factory.mktemp("zlb") / "saved_model")
  export.export(model.policy, path, {"command": "test", "regime": "fresh", "options": {}})
  return path


# The app runs on `zlb_model`, by test: the app and its arguments after --model.
APP_RUNS = {
    "test_evaluate_app_on_rank_zlb": (
        "evaluate", ["--out={out}/eval", "--n_theta=5", "--sweep_points=3"]),
    "test_simulate_app_on_rank_zlb": (
        "simulate", ["--out={out}/sim", "--periods=60", "--irf_periods=10", "--moment_chains=20",
                     "--moment_periods=50", "--girf_draws=100", "--zlb_chains=20",
                     "--zlb_periods=200", "--theta=theta_pi=1.8"]),
    "test_simulate_without_an_equilibrium_fails_with_one_line": (
        "simulate", ["--out={out}/out", "--theta=rho_zeta=0.9,sigma_zeta=0.025"]),
}


@pytest.fixture(scope="module")
def zlb_app_runs(zlb_model, request):
  """The selected tests' app runs on `zlb_model`, started together as soon as it is exported,
  each its own process as `app` runs it (most of their time is TensorFlow's import and the
  reference's solve): test name -> `background.Job`."""
  chosen = {getattr(item, "originalname", None) for item in request.session.items}
  return {test: background.launch(f"zlb_apps_{test}", [
              sys.executable, "-m", f"apps.{name}", f"--model={zlb_model}", *args],
              cwd=ROOT, timeout=300)
          for test, (name, args) in APP_RUNS.items() if test in chosen}


def app_run(runs, request):
  """This test's app run: (the directory its --out is in, the `CompletedProcess`)."""
  job = runs[request.node.originalname]
  result = job.result()
  return pathlib.Path(job.out), result


def finite(x):
  return isinstance(x, (int, float)) and math.isfinite(x)


def test_evaluate_app_on_rank_zlb(zlb_app_runs, request):
  base, result = app_run(zlb_app_runs, request)
  out = base / "eval"
  assert result.returncode == 0, result.stderr
  assert "ZLB binds at calibration |" in result.stdout and "Euler errors" in result.stdout
  with open(out / "evaluation.json") as f:
    report = json.load(f)
  assert set(report["errors_pct"]) == {"N", "Pi"}
  z = report["zlb"]
  for key in ("frequency_nn", "frequency_reference", "difference_pp"):
    assert finite(z[key]), z
  assert 0.08 < z["frequency_reference"] < 0.11   # docs/models.md: about 9 % at the true values
  # At the calibration the ZLB binds from about -1.3 ergodic std of zeta down.
  assert z["binds_by_level"]["-2"] and not z["binds_by_level"]["-1"]
  for source in ("network", "reference"):
    e = report["euler_errors_log10"][source]
    assert finite(e["mean"]) and finite(e["max"]) and e["mean"] <= e["max"] < 0
  assert report["euler_errors_log10"]["reference"]["mean"] < -7
  for png in ("policy_N.png", "policy_Pi.png", "errors.png", "policies.png"):
    assert_png(out / png)


def test_simulate_app_on_rank_zlb(zlb_app_runs, request):
  base, result = app_run(zlb_app_runs, request)
  out = base / "sim"
  assert result.returncode == 0, result.stderr
  header, path = read_csv(out / "simulation.csv")
  assert header == ["period", "zeta", "N_nn", "Pi_nn", "R_nn", "ZLB_slack_nn",
                    "N_reference", "Pi_reference", "R_reference", "ZLB_slack_reference"]
  assert path.shape == (60, 10) and np.isfinite(path).all()
  assert (path[:, [4, 8]] >= 0).all()   # log R: floored at zero by the ZLB
  # The slack is the notional rate: where it is negative, R is at the floor.
  assert (path[path[:, 9] < 0, 8] == 0).all() and (path[path[:, 9] > 0, 8] > 0).all()
  for k in (1, 3):
    header, girf = read_csv(out / f"girf_{k}std.csv")
    assert girf.shape[0] == 10 and np.isfinite(girf).all()
    # Same shock, same law of motion: zeta's response is exactly -k innovations, decaying.
    np.testing.assert_allclose(girf[:, 1], -k * 0.02 * 0.7 ** np.arange(10), rtol=1e-4)
  with open(out / "moments.json") as f:
    report = json.load(f)
  assert report["theta"]["theta_pi"] == 1.8 and report["reference"] == "time iteration"
  for source in ("network", "reference"):
    stats = report["constraint"][source]
    assert all(finite(stats[k]) for k in ("share_binding", "mean_spell", "max_spell"))
  assert report["constraint"]["constraint"] == "ZLB"
  assert 0 < report["constraint"]["reference_ergodic_frequency"] < 0.3
  girf = report["girf"]["-3_std"]
  assert finite(girf["impact_N_nn"]) and girf["impact_N_reference"] < 0
  assert girf["impact_bind_share_reference"] > girf["impact_bind_share_baseline_reference"]
  for source in ("network", "reference_simulated"):
    assert all(finite(report[source][f"std_{n}"]) for n in ("zeta", "N", "Pi", "R"))
  for png in ("simulation.png", "girf.png"):
    assert_png(out / png)


def test_the_reference_as_a_network_scores_zero():
  """The reference itself, called as a network (float32), scores ~0 everywhere: errors, ZLB
  frequency difference, Euler errors equal to the reference's own."""
  theta = accuracy.draw_box(ZLB, 3, seed=0).numpy().astype(np.float64)
  ref = ZLB.reference(np.concatenate([ZLB.calibration[None], theta]))   # rows: exact matches
  as_network = simulation.batched(ref.as_policy())
  report = accuracy.evaluate(ZLB, as_network, n_theta=3, seed=0, mc=4)
  assert report["n_theta"] >= 1
  for name in ZLB.policy_names:
    assert report["errors_pct"][name]["max"] < 1e-3, report["errors_pct"]
    assert report["calibration"][name]["scaled_error_pct"] < 1e-3, report["calibration"]
  assert abs(report["zlb"]["difference_pp"]) < 1e-3, report["zlb"]
  euler = report["euler_errors_log10"]
  assert euler["network"]["mean"] == pytest.approx(euler["reference"]["mean"], abs=0.1)
  assert "| state = -2 std |" in accuracy.markdown(report)
  assert "| -2.5 |" not in accuracy.markdown(report)


def test_simulate_without_an_equilibrium_fails_with_one_line(zlb_app_runs, request):
  # docs/models.md, "Where an equilibrium exists": no stable equilibrium at high rho_zeta with high sigma_zeta.
  _, result = app_run(zlb_app_runs, request)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  lines = app_lines(result.stderr)
  assert len(lines) == 1 and "no stable equilibrium" in lines[0], result.stderr


@pytest.fixture(scope="module")
def calibration_reference():
  return ZLB.reference(ZLB.calibration[None])


def test_a_shifted_policy_moves_the_zlb_frequency(calibration_reference):
  ref = calibration_reference
  base = ref.as_policy()
  # Inflation 0.1 % lower everywhere: the notional rate falls by theta_pi * 0.001 = 0.002, about
  # 0.4 of its ergodic std, so the ZLB binds much more often (9 % -> ~ 20 %).
  shifted = lambda s, t: tf.cast(base(s, t), tf.float32) - tf.constant([0.0, 0.001])
  extras = rank_zlb.zlb_accuracy(ZLB, shifted, reference=ref, draws=500)
  assert extras["zlb"]["difference_pp"] > 5
  assert extras["euler_errors_log10"]["network"]["mean"] > -5


def test_spell_statistics():
  at = np.array([[0, 1], [1, 1], [1, 0], [0, 0], [1, 1]], bool)   # [periods, chains]
  s = constraint.spell_statistics(at)
  # chain 0: spells of 2 and 1; chain 1: spells of 2 and 1 (cut at the ends).
  assert s["spells"] == 4 and s["mean_spell"] == 1.5 and s["max_spell"] == 2
  assert s["share_binding"] == 0.6


def test_girf_of_a_linear_policy_is_its_impulse_response():
  """NK's closed form is linear: the generalised response equals the plain one, exactly."""
  nk = economies.get("nk")
  theta = nk.calibration.astype(np.float32)
  closed = lambda s, t: nk.closed_form(s, t)
  table, _ = simulation.generalized_impulse_response(nk, closed, theta, shock=1.0, horizon=8,
                                                     draws=50)
  irf = simulation.impulse_response(nk, closed, theta, horizon=8)
  # NK's innovation scale is negative: +1 std of eps lowers zeta, the mirror of `irf`.
  np.testing.assert_allclose(table["zeta"], -irf["zeta"], rtol=1e-4)
  np.testing.assert_allclose(table["X_exact"], -irf["X_exact"], rtol=1e-3)
  np.testing.assert_allclose(table["X_nn"], table["X_exact"], rtol=1e-5)


def test_policy_figure_draws_each_thetas_own_reference():
  """The dashed curves of every row are that row's theta's reference (a row once showed the
  calibration's reference scaled to its own std)."""
  from nk_keras import constraint_plots
  economy = economies.get("rank_zlb")
  thetas = np.array([economy.calibration, economy.theta_from({"theta_pi": 1.6, "theta_y": 0.1})],
                    np.float64)
  alone = economy.reference(thetas[1:])
  fig = constraint_plots.policies_vs_state(economy, alone.as_policy(), thetas, points=21)
  dashed = [line for ax in fig.subfigs[1].axes for line in ax.get_lines()
            if line.get_linestyle() == "--"]
  k = dashed[0].get_xdata()
  expected = 100 * alone.policies_z(k[None])[0][:, 0]          # 100 log N of theta 1
  np.testing.assert_allclose(dashed[0].get_ydata(), expected, atol=1e-6)


def test_girf_figure_names_every_panel_without_a_reference():
  """An economy without a reference (the HANK) draws the network's responses alone: every
  panel still says what it shows (the values' panels once lost their titles)."""
  from nk_keras import constraint_plots, plots, simulation
  economy = economies.get("rank_zlb")
  t = np.arange(5)
  names = simulation.value_names(economy)
  tables = {s: {"period": t, economy.state_names[0]: s * 0.01 * t,
                **{f"{n}_nn": s * 0.001 * t for n in names},
                "bind_share_nn": 0.1 + 0 * t, "bind_share_baseline_nn": 0.05 + 0 * t}
            for s in (-1.0, -3.0)}
  fig = constraint_plots.girfs(tables, economy, "network only")
  for row in np.reshape(fig.axes, (2, len(names) + 2)):
    assert [ax.get_title() for ax in row[1:-1]] == [
        plots.label(n, economy) for n in names]
    assert all(ax.get_title() for ax in row)


def test_path_figure_wraps_many_panels_into_rows():
  """An agent set's path (a dozen states and values) wraps into rows of at most
  `PATH_COLUMNS` panels, each titled, instead of one row thousands of pixels wide; each agent
  state is one panel of its distribution over time (10th, 50th, 90th percentiles)."""
  from nk_keras import constraint_plots, simulation
  economy = economies.get("hank_zlb", agents=3)
  t = np.arange(6)
  states = simulation.state_column_names(economy)
  names = simulation.value_names(economy)
  table = {"period": t, f"{economy.constraint}_slack_nn": 0.01 - 0.004 * t,
           **{n: 0.01 * t for n in states}, **{f"{n}_nn": 0.001 * t for n in names}}
  fig = constraint_plots.path(table, economy, "path", economy.calibration)
  shown = [ax for ax in fig.axes if ax.get_visible()]
  panels = economy.n_aggregate_states + len(economy.agent_states) + len(names)
  assert panels > constraint_plots.PATH_COLUMNS
  assert len(shown) == panels and all(ax.get_title() for ax in shown)
  wealth = shown[economy.n_aggregate_states]
  assert [line.get_label() for line in wealth.get_lines()] == [
      f"{q} across agents" for q in ("p90", "p50", "p10")]
  columns = {round(ax.get_position().x0, 3) for ax in shown}
  assert len(columns) == constraint_plots.PATH_COLUMNS
