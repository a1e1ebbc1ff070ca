"""KMR's estimation, stage by stage: data, the particle-filter likelihood on Sobol draws, the
surrogate fitted to it, MCMC on the surrogate (and on the exact Kalman likelihood where the
economy has a linear state-space form), the particle filter against Kalman, figures, report.

  from nk_keras.estimation import pipeline
  report = pipeline.run(pipeline.EstimateOptions(policy="saved_models/nk_cached"), "runs/e")

or stage by stage, each reading and adding to one `Estimation`:

  est = pipeline.start(options, out)
  pipeline.data(est); pipeline.likelihood_dataset(est); pipeline.fit_surrogate(est)
  pipeline.chains(est); pipeline.pf_study(est); pipeline.figures(est); pipeline.report(est)

Files written to `out`: data.csv, dataset.npz, surrogate/, samples.npz, pf_convergence.png,
likelihood_slices.png, posterior_densities.png, trace.png, posterior.json (README,
"Estimation"). The estimate app's flags are made from `EstimateOptions`.
"""

import dataclasses
import json
import os
import time

import numpy as np

from nk_keras import options as options_lib
from nk_keras.errors import UserError
from nk_keras.options import option


@dataclasses.dataclass
class EstimateOptions:
  """Every option of an estimation, and the definition of the estimate app's flag of the same
  name. Defaults: KMR's sizes."""
  policy: str = option(None, "Policy SavedModel directory (the export contract).")
  data: str = option(None, "CSV of observables (X, Pi, optionally zeta); default: simulate.")
  estimate: str = option("", "Parameters to estimate, comma-separated; default all but "
                         "--fixed.")
  fixed: str = option("", "Fixed parameters, name=value,...; others not estimated sit at the "
                      "true theta (simulated data) or the calibration.")
  theta: str = option("", "Simulated data: the true parameters, name=value,...; others at the "
                      "calibration.")
  periods: int = option(100, "Simulated data: periods.", lower=10)
  observe_zeta: bool = option(False, "Simulated data: observe zeta too (KMR's code does).")
  me_share: float = option(0.1, "Measurement-error variance as a share of each series' "
                           "variance (KMR: 0.05 paper, 0.1 code).", lower=1e-4, upper=10.0)
  data_seed: int = option(0, "Simulated data: seed.", lower=0)
  draws: int = option(10000, "Sobol draws of theta for the surrogate.", lower=20)
  particles: int = option(100, "Particles of the filter.", lower=2)
  validation: float = option(0.1, "Share of draws held out.", lower=0.01, upper=0.5)
  width: int = option(128, "Surrogate: units per hidden layer.", lower=1)
  depth: int = option(4, "Surrogate: hidden layers.", lower=1)
  activation: str = option("celu", "Surrogate: activation (a Keras name).")
  steps: int = option(30000, "Surrogate: Adam steps (about 850 epochs of 9,000 draws).",
                      lower=1)
  batch: int = option(256, "Surrogate: batch size.", lower=1)
  lr: float = option(1e-3, "Surrogate: initial learning rate (cosine decay).", lower=0)
  sampler: str = option("rwmh", "MCMC kernel.", choices=("rwmh", "hmc", "nuts"))
  chains: int = option(16, "MCMC chains (vectorised: more chains cost little more time).",
                       lower=2)
  samples: int = option(20000, "MCMC draws kept per chain.", lower=10)
  burnin: int = option(5000, "MCMC burn-in per chain (after the RWMH pilot runs).", lower=0)
  pilot_steps: int = option(2000, "RWMH: steps of each of 4 proposal-tuning runs.", lower=10)
  kalman: bool = option(True, "Also sample the exact (Kalman) posterior, if the economy has a "
                        "state-space form.")
  slice_points: int = option(25, "Points per likelihood slice.", lower=3)
  pf_study: str = option("10,100,1000,10000", "Particle counts of the PF-vs-Kalman study ('' "
                         "to skip).")
  pf_replications: int = option(20, "Seeds per particle count in the study.", lower=2)
  seed: int = option(0, "Seed of the filter, the fit and the MCMC.", lower=0)

  def check(self):
    """A UserError naming the first of `CHECKS` these options fail (bounds are the flags')."""
    return options_lib.check(self, CHECKS)


def _holds_out_one(o):
  from nk_keras.estimation import surrogate
  return 1 <= surrogate.validation_count(o["draws"], o["validation"]) < o["draws"]


# Conditions beyond one option's bounds: the estimate app's flag validators, and `check`.
CHECKS = (
    (("draws", "validation"), _holds_out_one,
     "--validation x --draws must hold out at least one draw (no validation draw otherwise)"),
)


class Estimation:
  """What the stages share: the options, the output directory, and each stage's results as
  attributes (set by the stage that makes them; see each stage's docstring)."""

  def __init__(self, options, out):
    self.options, self.out = options, out
    self.timings = {}


def parse_names(text):
  return [s.strip() for s in text.split(",") if s.strip()]


def choose_parameters(economy, estimate, fixed_values):
  """Estimated names in economy order from --estimate and --fixed (unknown names and fixed
  values outside the box refused)."""
  from nk_keras import cli
  cli.check_names(economy, "--estimate", estimate)
  cli.theta_with(economy, "--fixed", fixed_values)
  both = sorted(set(estimate) & set(fixed_values))
  if both:
    raise UserError(f"{', '.join(both)} both estimated and fixed")
  chosen = [n for n in economy.param_names
            if (n in estimate if estimate else n not in fixed_values)]
  if not chosen:
    raise UserError("no parameter left to estimate")
  return chosen


def timed(timings, name, log=True):
  """A context that records the seconds its block took in `timings[name]` (and says so)."""
  class Stage:
    def __enter__(self):
      if log:
        print(f"[{name}]", flush=True)
      self.start = time.perf_counter()

    def __exit__(self, *exc):
      timings[name] = round(time.perf_counter() - self.start, 2)
      if log and exc[0] is None:
        print(f"[{name}] {timings[name]:.1f} s", flush=True)
  return Stage()


def start(options, out):
  """Checks the options' syntax, loads the policy, chooses the estimated parameters and accepts
  `out`. Sets `fixed_values`, `true_values`, `pf_counts`, `policy`, `economy`, `names`."""
  from nk_keras import cli, export
  options.check()
  o = options
  fixed_values = cli.parse_assignments("--fixed", o.fixed)
  true_values = cli.parse_assignments("--theta", o.theta)
  estimate = parse_names(o.estimate)
  if o.data and o.theta:
    raise UserError("--theta sets the truth of simulated data; it has no use with --data")
  try:
    pf_counts = [int(s) for s in parse_names(o.pf_study)]
  except ValueError:
    raise UserError(f"--pf_study: expected particle counts like 10,100,1000, got "
                    f"{o.pf_study!r}") from None
  if any(n < 2 for n in pf_counts):
    raise UserError("--pf_study: particle counts must be at least 2")
  if not o.policy:
    raise UserError("--policy: a policy SavedModel directory is required")
  import tensorflow as tf
  # TFP's ESS casts its FFT's complex result to real and TF warns about it on every call.
  tf.get_logger().setLevel("ERROR")
  est = Estimation(options, out)
  est.fixed_values, est.true_values, est.pf_counts = fixed_values, true_values, pf_counts
  est.policy = export.LoadedPolicy(o.policy)
  est.economy = est.policy.economy
  est.names = choose_parameters(est.economy, estimate, fixed_values)
  cli.writable_dir(out)
  return est


def data(est):
  """Reads --data or simulates it; writes data.csv. Sets `observations`, `theta_true` (None for
  read data), `fixed` (the full theta `[n_params]` float64 the estimated ones vary around),
  `use_kalman`, `idx` (the estimated parameters' indices)."""
  from nk_keras import cli
  from nk_keras.estimation import data as data_lib
  o, economy = est.options, est.economy
  with timed(est.timings, "data"):
    if o.data:
      if not os.path.isfile(o.data):
        raise UserError(f"--data: no file at {o.data!r}")
      observations = data_lib.read_csv(o.data, economy, o.me_share)
      theta_true = None
      base = economy.theta_from({})
    else:
      theta_true = cli.theta_with(economy, "--theta", est.true_values)
      observations = data_lib.simulate(economy, est.policy, theta_true, o.periods,
                                       o.me_share, o.observe_zeta, o.data_seed)
      base = theta_true
    est.fixed = economy.theta_from({**{n: float(v) for n, v in zip(economy.param_names, base)},
                                    **est.fixed_values}).astype(np.float64)
    data_lib.write_csv(os.path.join(est.out, "data.csv"), observations)
  print(f"{observations.periods} periods of {', '.join(observations.names)} "
        f"({observations.source}); estimating {', '.join(est.names)}")
  est.observations, est.theta_true = observations, theta_true
  try:
    economy.state_space(economy.theta_from({})[None].astype(np.float64))
    exact_available = True
  except NotImplementedError:
    exact_available = False
  est.use_kalman = o.kalman and exact_available
  est.idx = [economy.param_names.index(n) for n in est.names]
  return est


def likelihood_dataset(est):
  """The particle filter on --draws Sobol thetas; writes dataset.npz. Sets `filt` (the filter)
  and `dataset`."""
  from nk_keras.estimation import data as data_lib
  from nk_keras.estimation import particle_filter as pf_lib
  from nk_keras.estimation import surrogate as sg
  o = est.options
  est.filt = pf_lib.ParticleFilter(est.economy, est.policy, est.observations, o.particles)
  data_lib.check_likelihood(est.filt, est.fixed, est.observations, o.seed)
  with timed(est.timings, "particle filter on Sobol draws"):
    est.dataset = sg.make_dataset(est.economy, est.filt, est.names, est.fixed, o.draws,
                                  seed=o.seed, validation=o.validation, progress=True)
  sg.save_dataset(os.path.join(est.out, "dataset.npz"), est.dataset, est.names)
  est.timings["particle filter, thetas per second"] = round(o.draws / est.dataset["seconds"], 1)
  return est


def fit_surrogate(est):
  """Fits the surrogate, measures it (and the filter) against Kalman where there is one; writes
  surrogate/. Sets `surrogate`, `history`, `accuracy`."""
  from nk_keras.estimation import kalman
  from nk_keras.estimation import surrogate as sg
  o, dataset = est.options, est.dataset
  with timed(est.timings, "surrogate fit"):
    surrogate, est.history = sg.fit(est.economy, dataset, est.names, est.fixed, o.width,
                                    o.depth, o.activation, o.steps, o.batch, o.lr, o.seed,
                                    progress=True)
  val = dataset["is_validation"]
  predicted = surrogate.predict(dataset["theta"])
  accuracy = {"surrogate_vs_pf_validation": sg.errors(predicted[val],
                                                      dataset["log_likelihood"][val])}
  if est.use_kalman:
    with timed(est.timings, "Kalman on the Sobol draws", log=False):
      exact = kalman.log_likelihood(est.economy, est.observations, dataset["theta"]).numpy()
    top = val & (exact >= np.quantile(exact, 0.9))
    accuracy["surrogate_vs_kalman_validation"] = sg.errors(predicted[val], exact[val])
    accuracy["surrogate_vs_kalman_validation_top10pct"] = sg.errors(predicted[top], exact[top])
    accuracy["pf_vs_kalman_all_draws"] = sg.errors(dataset["log_likelihood"], exact)
    accuracy["pf_vs_kalman_top10pct"] = sg.errors(dataset["log_likelihood"][exact >= np.quantile(
        exact, 0.9)], exact[exact >= np.quantile(exact, 0.9)])
  surrogate.save(os.path.join(est.out, "surrogate"), metadata={
      "policy": os.path.abspath(o.policy), "draws": o.draws,
      "particles": o.particles, "steps": o.steps, "accuracy": accuracy})
  est.surrogate, est.accuracy = surrogate, accuracy
  return est


def chains(est):
  """MCMC on the surrogate, and on the Kalman likelihood where there is one; writes samples.npz.
  Sets `target`, `mcmc` and `result` (the surrogate's), `kalman_mcmc` and `reference`
  (Kalman's, or None), `samples` (name -> draws)."""
  from nk_keras.estimation import kalman, posterior
  o, economy, names = est.options, est.economy, est.names
  settings = dict(n_chains=o.chains, n_samples=o.samples, n_burnin=o.burnin,
                  sampler=o.sampler, seed=o.seed, pilot_steps=o.pilot_steps, progress=True)
  with timed(est.timings, f"MCMC on the surrogate ({o.sampler})"):
    est.target = posterior.Target(economy, est.surrogate, names, est.fixed)
    est.mcmc = posterior.sample(est.target, desc="MCMC, surrogate", **settings)
  est.result = posterior.summary(names, est.mcmc["samples"])
  est.samples = {"surrogate": est.mcmc["samples"]}
  est.reference = est.kalman_mcmc = None
  if est.use_kalman:
    with timed(est.timings, f"MCMC on the Kalman likelihood ({o.sampler})"):
      exact_ll = kalman.log_likelihood_fn(economy, est.observations)
      ktarget = posterior.Target(economy, lambda t: exact_ll(est.target.full(t)), names,
                                 est.fixed)
      est.kalman_mcmc = posterior.sample(ktarget, desc="MCMC, Kalman", **settings)
    est.reference = posterior.summary(names, est.kalman_mcmc["samples"])
    est.samples["Kalman"] = est.kalman_mcmc["samples"]
  np.savez(os.path.join(est.out, "samples.npz"), names=np.array(names), **est.samples)
  return est


def _center(est):
  """The true theta of simulated data, else the full theta at the posterior means."""
  if est.theta_true is not None:
    return est.theta_true
  return est.target.full(np.array([[est.result[n]["mean"] for n in est.names]])).numpy()[0]


def pf_study(est):
  """The particle filter against Kalman (bias and spread per particle count, network and
  closed-form policies) at the true or estimated theta; writes pf_convergence.png. Sets
  `pf_results` and `exact_at` (Kalman there), empty and None without Kalman or counts."""
  from nk_keras import plots
  from nk_keras.estimation import figures as figures_lib
  from nk_keras.estimation import kalman
  from nk_keras.estimation import particle_filter as pf_lib
  o, economy = est.options, est.economy
  est.pf_results, est.exact_at = {}, None
  if not (est.use_kalman and est.pf_counts):
    return est
  at = _center(est)
  est.exact_at = float(kalman.log_likelihood(economy, est.observations, at[None]).numpy()[0])
  with timed(est.timings, "PF vs Kalman study"):
    for label, pol in (("network policy", est.policy),
                       ("closed-form policy", pf_lib.closed_form_policy(economy))):
      est.pf_results[label] = pf_lib.bias_and_spread(
          economy, pol, est.observations, at[None], est.exact_at, est.pf_counts,
          o.pf_replications)
  plots.save(figures_lib.pf_convergence(
      est.pf_results, f"Particle filter vs Kalman at "
      f"{'the true' if est.theta_true is not None else 'the estimated'}"
      f" theta ({o.pf_replications} seeds each)"), os.path.join(est.out, "pf_convergence.png"))
  return est


def figures(est):
  """Likelihood slices through the true or estimated theta (surrogate, filter, Kalman),
  posterior densities and trace plots: likelihood_slices.png, posterior_densities.png,
  trace.png."""
  from nk_keras import plots
  from nk_keras.estimation import figures as figures_lib
  from nk_keras.estimation import kalman
  o, economy, names, idx = est.options, est.economy, est.names, est.idx
  with timed(est.timings, "likelihood slices"):
    center = _center(est)
    grids = np.stack([np.linspace(economy.box_low[i], economy.box_high[i], o.slice_points)
                      for i in idx])                                              # [k, G]
    thetas = np.tile(center, (len(names), o.slice_points, 1))
    for j, i in enumerate(idx):
      thetas[j, :, i] = grids[j]
    flat = thetas.reshape(-1, economy.n_params)
    shape = grids.shape
    curves = {"surrogate": est.surrogate.predict(flat).reshape(shape),
              "particle filter": est.filt(flat, seed=o.seed).reshape(shape)}
    if est.use_kalman:
      curves["Kalman"] = kalman.log_likelihood(economy, est.observations,
                                               flat).numpy().reshape(shape)
  plots.save(figures_lib.likelihood_slices(
      names, grids, curves, center[idx],
      f"Log-likelihood through the {'true' if est.theta_true is not None else 'estimated'} "
      f"theta ({o.particles} particles)"), os.path.join(est.out, "likelihood_slices.png"))
  box = [[economy.box_low[i], economy.box_high[i]] for i in idx]
  plots.save(figures_lib.posterior_densities(
      names, est.samples, box, None if est.theta_true is None else est.theta_true[idx],
      f"Posterior: surrogate vs exact likelihood ({o.sampler}, {o.chains} chains)"),
      os.path.join(est.out, "posterior_densities.png"))
  plots.save(figures_lib.traces(names, est.mcmc["samples"], "MCMC on the surrogate"),
             os.path.join(est.out, "trace.png"))
  return est


def report(est):
  """Writes posterior.json (README, "Estimation") and prints the posterior table. Returns the
  report."""
  o, economy, observations, fixed = est.options, est.economy, est.observations, est.fixed
  settings = {
      "policy": os.path.abspath(o.policy), "economy": economy.name,
      "data": os.path.abspath(o.data) if o.data else observations.source,
      "observables": list(observations.names), "periods": observations.periods,
      "measurement_error": {"share": o.me_share,
                            "variance": dict(zip(observations.names,
                                                 map(float, observations.me_var))),
                            "rule": ("share x sample variance of each clean simulated series"
                                     if not o.data else
                                     "share/(1+share) x sample variance of each observed series")},
      "estimated": est.names,
      "fixed": {n: float(fixed[i]) for i, n in enumerate(economy.param_names)
                if n not in est.names},
      "true_theta": None if est.theta_true is None else
      {n: float(str(v)) for n, v in zip(economy.param_names, est.theta_true)},
      "draws": o.draws, "particles": o.particles, "validation": o.validation,
      "surrogate": {"width": o.width, "depth": o.depth, "activation": o.activation,
                    "steps": o.steps, "batch": o.batch, "lr": o.lr,
                    "best_val_loss": float(min(est.history["val_loss"]))},
      "mcmc": {k: v for k, v in est.mcmc.items() if k not in ("samples", "proposal_cov")},
      "seed": o.seed,
      "prior": "economy prior (uniform on the box) at the full theta with fixed values inserted",
  }
  result = {"parameters": est.result, "settings": settings, "kalman_reference": est.reference,
            "kalman_mcmc": None if est.reference is None else
            {k: v for k, v in est.kalman_mcmc.items() if k not in ("samples", "proposal_cov")},
            "accuracy": est.accuracy, "particle_filter_vs_kalman": est.pf_results,
            "kalman_log_likelihood_at_study_theta": est.exact_at, "timings_s": est.timings}
  with open(os.path.join(est.out, "posterior.json"), "w") as f:
    json.dump(result, f, indent=2)
  print()
  print(table(est.names, est.result, est.reference, est.theta_true, economy))
  print(f"wrote posterior.json, figures and files to {est.out}")
  return result


def table(names, result, reference, theta_true, economy):
  """The posterior as a Markdown table: per parameter the truth (if known), the surrogate's and
  Kalman's (if any) means and 90 % intervals, R-hat and ESS."""
  head = "| parameter | " + ("true | " if theta_true is not None else "") + \
      "surrogate mean [q05, q95] | " + ("Kalman mean [q05, q95] | " if reference else "") + \
      "R-hat | ESS |"
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for n in names:
    r = result[n]
    cells = [n]
    if theta_true is not None:
      cells.append(f"{theta_true[economy.param_names.index(n)]:.4g}")
    cells.append(f"{r['mean']:.4g} [{r['q05']:.4g}, {r['q95']:.4g}]")
    if reference:
      k = reference[n]
      cells.append(f"{k['mean']:.4g} [{k['q05']:.4g}, {k['q95']:.4g}]")
    cells += [f"{r['rhat']:.3f}", f"{r['ess']:.0f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def run(options, out):
  """Every stage in order; returns the report written to `<out>/posterior.json`."""
  est = start(options, out)
  for stage in (data, likelihood_dataset, fit_surrogate, chains, pf_study, figures):
    stage(est)
  return report(est)
