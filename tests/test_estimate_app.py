"""The estimate app end to end (synthetic data from a known theta) and its clean failures."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import background
from test_apps_eval_sim import ROOT, TF_NOISE, app_lines, assert_png

POLICY = os.path.join(ROOT, "saved_models", "nk_cached")
# Small but complete: two parameters, 256 Sobol draws, a 3 x 64 surrogate, 4 chains.
SMALL = ["--estimate=rho_a,sigma_a", "--theta=rho_a=0.9,sigma_a=0.05", "--periods=50",
         "--draws=256", "--particles=1000", "--width=64", "--depth=3", "--steps=10000", "--batch=32",
         "--chains=4", "--samples=2000", "--burnin=500", "--pilot_steps=500",
         "--pf_study=10,100", "--pf_replications=3", "--slice_points=7"]


def estimate(*args):
  return subprocess.run([sys.executable, "-m", "apps.estimate", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


# The run's process starts in the background lane (tests/background.py) while earlier tests run.
SMALL_RUN = background.job("small_run", [sys.executable, "-m", "apps.estimate",
                                         f"--policy={POLICY}", "--out={out}", *SMALL],
                           cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def small_run():
  r = SMALL_RUN.result()
  assert r.returncode == 0, r.stderr[-3000:]
  out = pathlib.Path(SMALL_RUN.out)
  with open(out / "posterior.json") as f:
    return out, json.load(f)


def test_posterior_covers_truth_and_agrees_with_kalman(small_run):
  out, report = small_run
  truth = report["settings"]["true_theta"]
  assert set(report["parameters"]) == {"rho_a", "sigma_a"}
  for name, s in report["parameters"].items():
    assert set(s) == {"mean", "std", "q05", "q95", "rhat", "ess"}
    assert s["q05"] <= truth[name] <= s["q95"], (name, s, truth[name])
    assert s["rhat"] < 1.1 and s["ess"] > 100, (name, s)
    exact = report["kalman_reference"][name]
    # The agreement bar: a quarter of the exact posterior's std, stds within 0.8-1.25.
    # The surrogate carries the filter's noise and bias, the policy's error and its own fit
    # error; with 2,400 fit steps here (underfitted) the means were 0.36-0.39 std off.
    assert abs(s["mean"] - exact["mean"]) < 0.25 * exact["std"], (name, s, exact)
    assert 0.8 < s["std"] / exact["std"] < 1.25, (name, s, exact)
  me = report["settings"]["measurement_error"]
  assert set(me["variance"]) == {"X", "Pi"} and me["share"] == 0.1
  for fig in ("likelihood_slices", "posterior_densities", "trace", "pf_convergence"):
    assert_png(os.path.join(out, f"{fig}.png"))
  assert os.path.exists(out / "surrogate" / "saved_model" / "saved_model.pb")


def test_app_reads_its_own_csv(small_run, tmp_path):
  """The CSV path: the data the app wrote, read back, gives a posterior on the same data."""
  out, _ = small_run
  r = estimate(f"--policy={POLICY}", f"--data={out / 'data.csv'}", f"--out={tmp_path}",
               "--estimate=rho_a", "--fixed=sigma_a=0.05", "--draws=64", "--steps=200",
               "--chains=2", "--samples=200", "--burnin=50", "--pilot_steps=50",
               "--pf_study=", "--slice_points=3", "--width=16", "--depth=1", "--nokalman")
  assert r.returncode == 0, r.stderr[-3000:]
  with open(tmp_path / "posterior.json") as f:
    report = json.load(f)
  assert list(report["parameters"]) == ["rho_a"]
  assert report["settings"]["fixed"]["sigma_a"] == pytest.approx(0.05)
  assert report["kalman_reference"] is None


def test_bad_input_is_one_line(tmp_path):
  bad_csv = tmp_path / "bad.csv"
  bad_csv.write_text("X,zeta\n" + "0.1,0.2\n" * 30)
  # Finite but absurd: the variance of 1e300 overflows; 1e25 squared overflows the filter's
  # float32. Either way the likelihood would be NaN and every stage after it garbage.
  # (`test_estimation.py` checks the likelihood probe that catches what these checks miss.)
  rng = np.random.default_rng(0)
  huge, large = tmp_path / "huge.csv", tmp_path / "large.csv"
  for path, scale in ((huge, 1e300), (large, 1e25)):
    path.write_text("X,Pi\n" + "".join(f"{float(scale * a)!r},{float(scale * b)!r}\n"
                                        for a, b in rng.uniform(0.5, 1, (30, 2))))
  cases = {
      "no model directory": [f"--policy={tmp_path / 'nope'}"],
      "missing column(s) Pi": [f"--policy={POLICY}", f"--data={bad_csv}"],
      "unknown parameter(s) gamma": [f"--policy={POLICY}", "--estimate=beta,gamma"],
      "outside the box": [f"--policy={POLICY}", "--fixed=beta=1.2"],
      "not a finite number": [f"--policy={POLICY}", "--fixed=beta=nan"],
      "validation draw": [f"--policy={POLICY}", "--draws=20", "--validation=0.01"],
      "too large for the likelihood": [f"--policy={POLICY}", f"--data={huge}"],
      "(largest |value| 9.9": [f"--policy={POLICY}", f"--data={large}"],
  }
  # Other bad files (NaN, text, too short) are the library's tests; each process here spends
  # most of its time importing TensorFlow, so they run in parallel and are few. Each has its own
  # --out: one run at a time may hold one (files.locked).
  procs = {msg: subprocess.Popen([sys.executable, "-m", "apps.estimate",
                                  f"--out={tmp_path / f'o{i}'}", *args], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i, (msg, args) in enumerate(cases.items())}
  for msg, p in procs.items():
    _, err = p.communicate(timeout=300)
    lines = app_lines(err)
    assert p.returncode == 2, (msg, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], (msg, lines)


def test_the_pipeline_runs_stage_by_stage_from_python(tmp_path):
  """The app's stages are library calls: options checked as the flags are, data written."""
  from nk_keras.errors import UserError
  from nk_keras.estimation import pipeline
  with pytest.raises(UserError, match="unknown parameter"):
    pipeline.start(pipeline.EstimateOptions(policy=POLICY, estimate="gamma"), str(tmp_path))
  with pytest.raises(UserError, match="validation draw"):
    pipeline.start(pipeline.EstimateOptions(policy=POLICY, draws=20, validation=0.01),
                   str(tmp_path))
  with pytest.raises(UserError, match="validation draw"):   # a second round of 4 draws
    pipeline.start(pipeline.EstimateOptions(policy=POLICY, draws=200, refine=0.02),
                   str(tmp_path))
  est = pipeline.start(pipeline.EstimateOptions(policy=POLICY, estimate="rho_a",
                                                theta="rho_a=0.9", periods=30), str(tmp_path))
  pipeline.data(est)
  assert est.names == ["rho_a"] and est.observations.periods == 30
  assert est.theta_true[est.economy.param_names.index("rho_a")] == pytest.approx(0.9)
  assert (tmp_path / "data.csv").read_text().count("\n") == 31


# --- rank_zlb: the exact-policy reference, resume ------------------------------------------------

ZLB_POLICY = os.path.join(ROOT, "saved_models", "rank_zlb")
# Tiny: the point is the plumbing (KMR's observables, data from time iteration, the exact-policy
# pipeline on the same draws and seeds), not the posterior.
ZLB_TINY = dict(periods=30, draws=48, refine=0.25, particles=40, width=16, depth=2, steps=200,
                batch=16, chains=2, samples=100, burnin=20, pilot_steps=20, slice_points=3,
                exact_grid=51, exact_nodes=20)


ZLB_APP_RUN = background.job(
    "zlb_app_run", [sys.executable, "-m", "apps.estimate", f"--policy={ZLB_POLICY}", "--out={out}",
                    *[f"--{k}={v}" for k, v in ZLB_TINY.items()], "--pf_study=10,40",
                    "--pf_replications=2"], cwd=ROOT, timeout=600)


@pytest.fixture()
def zlb_app_run():
  """The app's run (its process started in the background lane): (output directory, result)."""
  r = ZLB_APP_RUN.result()
  return pathlib.Path(ZLB_APP_RUN.out), r


def test_rank_zlb_app_runs_the_network_and_the_exact_policy_pipelines(zlb_app_run):
  out, r = zlb_app_run
  assert r.returncode == 0, r.stderr[-3000:]
  with open(out / "posterior.json") as f:
    report = json.load(f)
  s = report["settings"]
  assert s["observables"] == ["output_growth", "inflation", "interest_rate"]
  assert s["data"].startswith("simulated from the reference solution") and s["periods"] == 30
  assert s["reference"] == "exact policy" and report["kalman_reference"] is None
  names = ["theta_pi", "theta_y", "phi", "rho_zeta", "sigma_zeta"]
  assert list(report["parameters"]) == names == list(report["exact_policy_reference"])
  assert open(out / "data.csv").readline().strip() == \
      "period,output_growth,inflation,interest_rate"
  # The same Sobol thetas and filter seeds on both policies: the network's filter ranks the
  # draws as the exact policy's does (a filter reading another theta's table would not).
  # The second round's draws span a narrow band of likelihood near the first posterior, where
  # the filter's noise is a larger share of the spread (measured: 0.984 here, against 0.99+).
  for name, least in (("dataset.npz", 0.99), ("refine_dataset.npz", 0.9)):
    net, exact = np.load(out / name), np.load(out / "exact_policy" / name)
    np.testing.assert_array_equal(net["theta"], exact["theta"])
    assert np.corrcoef(net["log_likelihood"], exact["log_likelihood"])[0, 1] > least, name
  # The second round (a quarter of the 48 draws) lies where the first posterior is: inside the
  # first round's range, and nearer the network's posterior mean than the Sobol draws are.
  first, second = np.load(out / "dataset.npz")["theta"], net["theta"]
  assert len(second) == 12 and report["settings"]["draws_kept"] == 60
  with np.load(out / "first_round" / "chains.npz") as f:
    centre = f["samples"].reshape(-1, 5).mean(axis=0)
  spread = first.std(axis=0)
  near = lambda theta: np.abs((theta - centre) / spread).mean()
  assert near(second) < 0.5 * near(first), (near(second), near(first))
  assert set(report["particle_filter_vs_reference"]) == {"network policy", "exact policy"}
  for fig in ("likelihood_slices", "posterior_densities", "trace", "pf_convergence"):
    assert_png(os.path.join(out, f"{fig}.png"))


# The agreement bar on rank_zlb at a size one can wait for (3-4.5 minutes on 2 cores): two
# parameters, 200 periods, 512 Sobol draws and the economy's second round (256), KMR's other
# settings scaled down.
ZLB_AGREEMENT = dict(estimate="rho_zeta,sigma_zeta", periods=200, draws=512, particles=1000,
                     width=64, depth=3, steps=10000, batch=32, chains=4, samples=2000, burnin=500,
                     pilot_steps=500, slice_points=5, exact_grid=201, exact_nodes=40, pf_study="")


@pytest.mark.slow
def test_rank_zlb_surrogate_agrees_with_the_exact_policy_reference(tmp_path):
  r = estimate(f"--policy={ZLB_POLICY}", f"--out={tmp_path}",
               *[f"--{k}={v}" for k, v in ZLB_AGREEMENT.items()])
  assert r.returncode == 0, r.stderr[-3000:]
  with open(tmp_path / "posterior.json") as f:
    report = json.load(f)
  truth = report["settings"]["true_theta"]
  for name, s in report["parameters"].items():
    exact = report["exact_policy_reference"][name]
    for post in (s, exact):
      assert post["q05"] <= truth[name] <= post["q95"] and post["rhat"] < 1.1, (name, post)
    # The bar, as for nk against Kalman.
    assert abs(s["mean"] - exact["mean"]) < 0.25 * exact["std"], (name, s, exact)
    assert 0.8 < s["std"] / exact["std"] < 1.25, (name, s, exact)


# Four pipeline runs (1.5 minutes): with the slow tests.
@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_finished_stages(tmp_path, monkeypatch):
  import dataclasses
  from nk_keras.errors import UserError
  from nk_keras.estimation import pipeline, posterior
  options = pipeline.EstimateOptions(policy=ZLB_POLICY, estimate="rho_zeta,sigma_zeta",
                                     pf_study="", **ZLB_TINY)
  sample, calls = posterior.sample, []

  def interrupted_at_the_last_chains(target, desc="MCMC", **kwargs):
    calls.append(desc)
    if calls == ["MCMC, first round", "MCMC, surrogate", "MCMC, exact policy"]:
      raise KeyboardInterrupt
    return sample(target, desc=desc, **kwargs)

  monkeypatch.setattr(posterior, "sample", interrupted_at_the_last_chains)
  with pytest.raises(KeyboardInterrupt):
    pipeline.run(options, str(tmp_path))
  assert not os.path.exists(tmp_path / "exact_policy" / "chains.npz")
  before = {p: np.load(tmp_path / p)["log_likelihood"]
            for p in ("dataset.npz", "exact_policy/dataset.npz")}
  second_round = np.load(tmp_path / "refine_dataset.npz")["theta"]
  surrogate_chains = np.load(tmp_path / "chains_surrogate.npz")["samples"]
  report = pipeline.run(options, str(tmp_path))   # the same command again
  assert calls == ["MCMC, first round", "MCMC, surrogate", "MCMC, exact policy",
                   "MCMC, exact policy"]
  done = {"particle filter on Sobol draws", "first round: surrogate fit",
          "particle filter on the second round's draws", "surrogate fit",
          "MCMC on the surrogate (rwmh)", "exact policy: particle filter on the same Sobol draws",
          "exact policy: particle filter on the same second-round draws",
          "exact policy: surrogate fit"}
  assert not done & set(report["timings_s"]), report["timings_s"]
  assert "exact policy: MCMC on its surrogate (rwmh)" in report["timings_s"]
  assert report["settings"]["resumed"] and report["exact_policy_reference"] is not None
  for p, values in before.items():
    np.testing.assert_array_equal(np.load(tmp_path / p)["log_likelihood"], values)
  np.testing.assert_array_equal(np.load(tmp_path / "samples.npz")["surrogate"], surrogate_chains)
  with pytest.raises(UserError, match=r"options\.particles: 40 -> 41.*same options to resume"):
    pipeline.run(dataclasses.replace(options, particles=41), str(tmp_path))
  # Only the surrogate's and the sampler's settings changed: the Sobol datasets are kept, the
  # surrogates and the chains made again with the new settings, and the second round, which
  # the first fit placed, drawn again.
  report = pipeline.run(dataclasses.replace(options, steps=201, samples=101), str(tmp_path))
  assert {"surrogate fit", "exact policy: surrogate fit", "MCMC on the surrogate (rwmh)",
          "exact policy: MCMC on its surrogate (rwmh)", "first round: surrogate fit",
          "particle filter on the second round's draws",
          "exact policy: particle filter on the same second-round draws"
          } <= set(report["timings_s"])
  assert not np.array_equal(np.load(tmp_path / "refine_dataset.npz")["theta"], second_round)
  assert not {"particle filter on Sobol draws",
              "exact policy: particle filter on the same Sobol draws"} & set(report["timings_s"])
  for p, values in before.items():
    np.testing.assert_array_equal(np.load(tmp_path / p)["log_likelihood"], values)
  assert np.load(tmp_path / "samples.npz")["surrogate"].shape[0] == 101
  assert report["settings"]["surrogate"]["steps"] == 201
