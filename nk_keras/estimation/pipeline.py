"""KMR's estimation, stage by stage: data, the particle-filter likelihood on Sobol draws, the
surrogate fitted to it, MCMC on the surrogate, a reference posterior, the particle filter's
convergence, figures, report.

The reference: where the economy has a linear state-space form, MCMC on the exact Kalman
likelihood; otherwise (a zero lower bound) the same pipeline with the network policy swapped
for the time-iteration policy (`reference.solved_policy`), on the same Sobol thetas with the
same filter, fit and MCMC seeds, so the two posteriors differ by the network's error only.

  from nk_keras.estimation import pipeline
  report = pipeline.run(pipeline.EstimateOptions(policy="saved_models/nk_cached"), "runs/e")

or stage by stage, each reading and adding to one `Estimation`:

  est = pipeline.start(options, out)
  pipeline.data(est); pipeline.likelihood_dataset(est); pipeline.refine(est)
  pipeline.fit_surrogate(est)
  pipeline.chains(est); pipeline.exact_policy_reference(est); pipeline.pf_study(est)
  pipeline.figures(est); pipeline.report(est)

Files written to `out`: run.json (the run's options), data.csv, dataset.npz, with --refine
first_round/ (surrogate/, chains.npz) and refine_dataset.npz, surrogate/, chains_surrogate.npz,
chains_kalman.npz or exact_policy/ (dataset.npz, refine_dataset.npz, surrogate/, chains.npz),
samples.npz, pf_convergence.png, likelihood_slices.png, posterior_densities.png, trace.png,
posterior.json (README, "Estimation"). The estimate app's flags are made from `EstimateOptions`.

Resume: rerun with the same options into the same `out`, a run takes the likelihood datasets,
surrogates and chains it finds there as done (each is written under a temporary name and
renamed when complete); rerun with other surrogate or sampler settings (`REFIT_OPTIONS`), it
keeps the Sobol datasets and fits again (and draws the second round again, which the first fit
placed); with other options it refuses (`resume.py`).
"""

import contextlib
import dataclasses
import functools
import json
import os
import sys
import time

import numpy as np

from nk_keras import cli, files, sizes
from nk_keras import options as options_lib
from nk_keras.errors import UserError
from nk_keras.options import option


@dataclasses.dataclass
class EstimateOptions:
  """Every option of an estimation, and the definition of the estimate app's flag of the same
  name. Defaults: KMR's sizes."""
  policy: str = option(None, "Policy SavedModel directory (the export contract).")
  data: str = option(None, "CSV of observables (the economy's: nk X, Pi in log deviations; "
                     "rank_zlb output_growth, inflation, interest_rate in annualised percent; "
                     "optionally zeta); default: simulate from the reference solution.")
  estimate: str = option("", "Parameters to estimate, comma-separated; default all but "
                         "--fixed.")
  fixed: str = option("", "Fixed parameters, name=value,...; others not estimated sit at the "
                      "true theta (simulated data) or the calibration.")
  theta: str = option("", "Simulated data: the true parameters, name=value,...; others at the "
                      "calibration.")
  periods: int = option(None, "Simulated data: periods (default the economy's, KMR's: nk 100, "
                        "rank_zlb 500).", lower=10)
  observe_zeta: bool = option(False, "Simulated data: observe zeta too (KMR's code does).")
  me_share: float = option(0.1, "Measurement-error variance as a share of each series' "
                           "variance (KMR: 0.05 paper, 0.1 code).", lower=1e-4, upper=10.0)
  data_seed: int = option(0, "Simulated data: seed.", lower=0)
  draws: int = option(None, "Sobol draws of theta for the surrogate (default the economy's: "
                      "nk 10,000, KMR's; rank_zlb 4,000, then --refine).", lower=20)
  refine: float = option(None, "A second round of likelihood draws, as a share of --draws, "
                         "where the first surrogate posterior puts its mass (its std "
                         "doubled); 0: none, as KMR (default the economy's: nk 0, rank_zlb "
                         "0.5; BUILD_NOTES.md, \"A second round of draws\").", lower=0.0,
                         upper=10.0)
  particles: int = option(1000, "Particles of the filter (KMR: 100, whose bias moves the "
                          "posterior; BUILD_NOTES.md, \"A better surrogate\").", lower=2)
  pf_table: int = option(1001, "Filter on a one-state economy: the network's policy read from "
                         "a table of this many points on each theta's +-5 ergodic-std grid "
                         "(linear interpolation, as the exact policy is read), which costs a "
                         "fraction of a network call per particle (BUILD_NOTES.md, \"The "
                         "network's policy as a table\"); 0: the network at every particle.",
                         lower=0)
  validation: float = option(0.1, "Share of draws held out.", lower=0.01, upper=0.5)
  ensemble: int = option(5, "Surrogate: networks fitted side by side and averaged (one "
                        "fit's variance moves the posterior; BUILD_NOTES.md, \"The surrogate's "
                        "variance\").", lower=1)
  width: int = option(128, "Surrogate: units per hidden layer (each network).", lower=1)
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
  exact_policy: bool = option(True, "Where there is no Kalman likelihood: the reference "
                              "posterior from the same pipeline on the time-iteration policy.")
  exact_grid: int = option(301, "Exact-policy reference: time-iteration grid points (on +-5 "
                           "ergodic std).", lower=11)
  exact_nodes: int = option(60, "Exact-policy reference: quadrature nodes.", lower=5)
  slice_points: int = option(25, "Points per likelihood slice.", lower=3)
  pf_study: str = option("10,100,1000,10000", "Particle counts of the study of the filter "
                         "against the reference ('' to skip).")
  pf_replications: int = option(20, "Seeds per particle count in the study.", lower=2)
  seed: int = option(0, "Seed of the filter, the fit and the MCMC.", lower=0)

  def check(self):
    """A UserError naming the first of `CHECKS` these options fail (bounds are the flags')."""
    return options_lib.check(self, CHECKS)


def validation_count(n, validation):
  """Draws held out of `n` for a `validation` share; the fit needs at least one on each side.
  Here, not in the surrogate's module: a flag validator uses it, before TF is imported."""
  return int(round(validation * n))


def _holds_out_one(o):
  # None: the economy's, checked once it is known.
  if o["draws"] is None:
    return True
  return all(not n or 1 <= validation_count(n, o["validation"]) < n
             for n in (o["draws"], second_round(o["draws"], o["refine"] or 0)))


# Options the Sobol datasets do not depend on: a rerun into the same --out that changes
# only these keeps the datasets and fits the surrogates and samples the chains (`FITTED`) again.
REFIT_OPTIONS = ("refine", "ensemble", "width", "depth", "activation", "steps", "batch", "lr",
                 "sampler", "chains", "samples", "burnin", "pilot_steps", "kalman",
                 "slice_points", "pf_study", "pf_replications")
# The second round's draws depend on the first fit: its datasets are fitted results too.
FITTED = ("first_round", "refine_dataset.npz", "surrogate", "chains_surrogate.npz",
          "chains_kalman.npz", os.path.join("exact_policy", "refine_dataset.npz"),
          os.path.join("exact_policy", "surrogate"), os.path.join("exact_policy", "chains.npz"))
WIDEN = 2.0   # the second round's std over the first posterior's

# Time iteration's tolerance for the exact-policy reference: 6e-7 from the 1e-11 solution at
# most (96 thetas), far below the network's error and the measurement error, in a third fewer
# iterations than 1e-10.
EXACT_TOL = 1e-8


# Conditions beyond one option's bounds: the estimate app's flag validators, and `check`.
CHECKS = (
    (("draws", "refine", "validation"), _holds_out_one,
     "--validation x --draws, and x --refine x --draws unless 0, must hold out at least one "
     "draw (no validation draw otherwise)"),
    (("pf_table",), lambda o: o["pf_table"] == 0 or o["pf_table"] >= 11,
     "--pf_table must be 0 (no table) or at least 11 points"),
    (("policy",), options_lib.refused_by(files.saved_model), "--policy: not a SavedModel"),
    (("fixed",), options_lib.refused_by(functools.partial(cli.parse_assignments, "--fixed")),
     "--fixed: expected name=value,..."),
    (("theta",), options_lib.refused_by(functools.partial(cli.parse_assignments, "--theta")),
     "--theta: expected name=value,..."),
)


class Estimation:
  """What the stages share: the options, the output directory, and each stage's results as
  attributes (set by the stage that makes them; see each stage's docstring)."""

  def __init__(self, options, out):
    self.options, self.out = options, out
    self.timings = {}
    self.warnings = []


def second_round(draws, refine):
  """The second round's draws: a `refine` share of the first round's."""
  return int(round(draws * refine))


def parse_names(text):
  return [s.strip() for s in text.split(",") if s.strip()]


def filter_policy(policy, points):
  """What the network's filters call: `policy` read from a table of `points` per theta where
  the economy has one state (`points` > 0), else `policy` itself at every particle."""
  from nk_keras.reference.solved_policy import TabulatedPolicy
  if points and policy.economy.n_state == 1:
    return TabulatedPolicy(policy.economy, policy, n_grid=points)
  return policy


def choose_parameters(economy, estimate, fixed_values):
  """Estimated names in economy order from --estimate and --fixed (unknown names and fixed
  values outside the box refused)."""
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


def start(options, out, held=None):
  """Checks the options' syntax, loads the policy, sets the sizes left to the economy, chooses
  the estimated parameters, accepts `out` and claims it for this run (or resumes the run there).
  Sets `options` (resolved), `fixed_values`, `true_values`, `pf_counts`, `policy`, `economy`,
  `names`, `resumed`. With `held` (a `contextlib.ExitStack`), `out` is locked until it
  closes."""
  from nk_keras import export
  from nk_keras.estimation import resume
  from nk_keras.estimation import surrogate as sg
  options.check()
  o = options
  fixed_values = cli.parse_assignments("--fixed", o.fixed)
  true_values = cli.parse_assignments("--theta", o.theta)
  estimate = parse_names(o.estimate)
  if o.data:
    # Each shapes only simulated data: with --data it would be ignored without a word.
    unused = [flag for flag, given in (("--theta", o.theta), ("--periods", o.periods is not None),
                                       ("--observe_zeta", o.observe_zeta),
                                       ("--data_seed", o.data_seed != 0)) if given]
    if unused:
      raise UserError(f"{', '.join(unused)} {'shapes' if len(unused) == 1 else 'shape'} "
                      f"simulated data; {'it has' if len(unused) == 1 else 'they have'} no use "
                      f"with --data")
  if o.data and not os.path.isfile(o.data):
    raise UserError(f"--data: no file at {o.data!r}")
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
  policy = export.LoadedPolicy(o.policy)
  o = dataclasses.replace(o, **{k: v for k, v in policy.economy.estimation_sizes.items()
                                if getattr(o, k) is None})
  sg.check_split(o.draws, o.validation)
  if second_round(o.draws, o.refine):
    sg.check_split(second_round(o.draws, o.refine), o.validation)
  est = Estimation(o, out)
  est.fixed_values, est.true_values, est.pf_counts = fixed_values, true_values, pf_counts
  est.policy, est.economy = policy, policy.economy
  est.filter_policy = filter_policy(policy, o.pf_table)
  est.names = choose_parameters(est.economy, estimate, fixed_values)
  sizes.estimation(o, est.economy, len(est.names))
  cli.writable_dir(out)
  if held is not None:
    held.enter_context(files.locked(out))
  for directory in (out, os.path.join(out, "exact_policy")):
    files.remove_stale(directory)
  est.resumed = resume.claim(out, {
      "options": dataclasses.asdict(o), "policy_sha256": resume.digest(o.policy),
      "data_sha256": resume.digest(o.data) if o.data else None},
      results=("dataset.npz", os.path.join("exact_policy", "dataset.npz")),
      refit=REFIT_OPTIONS, redone=FITTED)
  if est.resumed:
    print(f"resuming the run in {out}: finished stages are taken from there")
  return est


def data(est):
  """Reads --data or simulates it from the reference solution (the true model, not the
  network); writes data.csv. Sets `observations`, `theta_true` (None for read data), `fixed`
  (the full theta `[n_params]` float64 the estimated ones vary around), `reference_kind`
  ("Kalman", "exact policy" or None), `use_kalman`, `idx` (the estimated parameters' indices)."""
  from nk_keras.estimation import data as data_lib
  o, economy = est.options, est.economy
  with timed(est.timings, "data"):
    if o.data:
      observations = data_lib.read_csv(o.data, economy, o.me_share)
      theta_true = None
      base = economy.theta_from({})
    else:
      theta_true = cli.theta_with(economy, "--theta", est.true_values)
      if economy.has_reference():
        truth = economy.reference(theta_true[None].astype(np.float64))
        if not truth.valid[0]:
          raise UserError(f"--theta: the reference solution finds no stable equilibrium at "
                          f"{dict(zip(economy.param_names, theta_true.tolist()))}")
        source, generator = "the reference solution", truth.as_policy()
      else:
        source, generator = "the network's own policy (no reference)", est.policy
      observations = dataclasses.replace(
          data_lib.simulate(economy, generator, theta_true, o.periods, o.me_share,
                            o.observe_zeta, o.data_seed),
          source=f"simulated from {source} (seed {o.data_seed})")
      base = theta_true
    est.fixed = economy.theta_from({**{n: float(v) for n, v in zip(economy.param_names, base)},
                                    **est.fixed_values}).astype(np.float64)
    data_lib.write_csv(os.path.join(est.out, "data.csv"), observations)
  print(f"{observations.periods} periods of {', '.join(observations.names)} "
        f"({observations.source}); estimating {', '.join(est.names)}")
  est.observations, est.theta_true = observations, theta_true
  try:
    economy.state_space(economy.theta_from({})[None].astype(np.float64))
    linear = True
  except NotImplementedError:
    linear = False
  est.reference_kind = ("Kalman" if linear and o.kalman else
                        "exact policy" if not linear and o.exact_policy
                        and economy.has_reference() else None)
  est.use_kalman = est.reference_kind == "Kalman"
  est.idx = [economy.param_names.index(n) for n in est.names]
  return est


def _dataset(est, particle_filter, theta, path, label):
  """The particle filter on the draws `theta` `[n, P]`, or the dataset a previous run of this
  one finished at `path`; writes `path`."""
  from nk_keras.estimation import surrogate as sg
  o = est.options
  if est.resumed and os.path.exists(path):
    print(f"[{label}] finished before: {path}")
    return sg.load_dataset(path)
  with timed(est.timings, label):
    dataset = sg.make_dataset(est.economy, particle_filter, est.names, theta, seed=o.seed,
                              validation=o.validation, progress=True, desc=label)
  est.timings[f"{label}, thetas per second"] = round(len(theta) / dataset["seconds"], 1)
  with files.replacing(path) as tmp:
    sg.save_dataset(tmp, dataset, est.names)
  return dataset


def _surrogate(est, dataset, directory, label):
  """The surrogate fitted to `dataset`, or the one a previous run finished; writes
  `directory`/surrogate/. Returns `(Surrogate, history)`."""
  from nk_keras.estimation import surrogate as sg
  o = est.options
  path = os.path.join(directory, "surrogate")
  if est.resumed and os.path.isdir(path):
    print(f"[{label}] finished before: {path}")
    with open(os.path.join(path, "surrogate.json")) as f:
      history = json.load(f)["history"]
    return sg.Surrogate.load(est.economy, path), history
  with timed(est.timings, label):
    surrogate, history = sg.fit(est.economy, dataset, est.names, est.fixed, o.width, o.depth,
                                o.activation, o.steps, o.batch, o.lr, o.seed, o.ensemble,
                                progress=True)
  history = {k: [float(v) for v in values] for k, values in history.items()}
  with files.replacing(path) as tmp:
    surrogate.save(tmp, metadata={"policy": os.path.abspath(o.policy), "draws": o.draws,
                                  "refine": o.refine,
                                  "particles": o.particles, "ensemble": o.ensemble,
                                  "steps": o.steps,
                                  "history": history})
  return surrogate, history


def _chains(est, target, path, label, desc):
  """MCMC on `target` with the run's settings, or the chains a previous run finished at `path`
  (samples and the sampler's report in one .npz)."""
  from nk_keras.estimation import posterior
  o = est.options
  if est.resumed and os.path.exists(path):
    print(f"[{label}] finished before: {path}")
    with np.load(path) as f:
      return {**json.loads(str(f["info"])), "samples": f["samples"]}
  with timed(est.timings, label):
    run = posterior.sample(target, n_chains=o.chains, n_samples=o.samples, n_burnin=o.burnin,
                           sampler=o.sampler, seed=o.seed, pilot_steps=o.pilot_steps,
                           progress=True, desc=desc)
  with files.replacing(path) as tmp:
    np.savez(tmp, samples=run["samples"],
             info=json.dumps({k: v for k, v in run.items() if k != "samples"}))
  return run


def likelihood_dataset(est):
  """The particle filter on --draws Sobol thetas; writes dataset.npz. Sets `filt` (the filter),
  `sobol` (the thetas `[draws, P]`) and `dataset`."""
  from nk_keras.estimation import data as data_lib
  from nk_keras.estimation import particle_filter as pf_lib
  from nk_keras.estimation import surrogate as sg
  o = est.options
  est.filt = pf_lib.ParticleFilter(est.economy, est.filter_policy, est.observations,
                                   o.particles)
  data_lib.check_likelihood(est.filt, est.fixed, est.observations, o.seed)
  est.sobol = sg.sobol_thetas(est.economy, est.names, est.fixed, o.draws)
  est.dataset = _dataset(est, est.filt, est.sobol, os.path.join(est.out, "dataset.npz"),
                         "particle filter on Sobol draws")
  flat = data_lib.flat_likelihood(est.dataset["log_likelihood"], est.observations, est.names)
  if flat:
    warn(est, flat)
  return est


def warn(est, text):
  """A warning printed at once to stderr and again under the posterior table, and kept in
  posterior.json's `warnings`: for results that would otherwise look sound."""
  est.warnings.append(text)
  print(f"WARNING: {text}", file=sys.stderr, flush=True)


def refine(est):
  """With --refine: a first surrogate and its chains on the Sobol draws (first_round/), then
  the filter on --refine x --draws draws around that posterior (`surrogate.posterior_thetas`),
  added to the dataset (refine_dataset.npz). Where the posterior is a small part of the box,
  few Sobol draws land in it and the surrogate's error there is what moves the posterior. Sets
  `refined` (the second round's thetas `[n, P]`, None without one) and, with one,
  `dataset` to both rounds."""
  from nk_keras.estimation import posterior
  from nk_keras.estimation import surrogate as sg
  o, economy = est.options, est.economy
  est.refined = None
  n = second_round(o.draws, o.refine)
  if not n:
    return est
  first = os.path.join(est.out, "first_round")
  os.makedirs(first, exist_ok=True)
  surrogate, _ = _surrogate(est, est.dataset, first, "first round: surrogate fit")
  target = posterior.Target(economy, surrogate, est.names, est.fixed)
  run = _chains(est, target, os.path.join(first, "chains.npz"),
                f"first round: MCMC on the surrogate ({o.sampler})", "MCMC, first round")
  est.refined = sg.posterior_thetas(economy, est.names, est.fixed, run["samples"], n, WIDEN)
  second = _dataset(est, est.filt, est.refined, os.path.join(est.out, "refine_dataset.npz"),
                    "particle filter on the second round's draws")
  est.dataset = sg.merge(est.dataset, second, o.draws)
  return est


def fit_surrogate(est):
  """Fits the surrogate, measures it (and the filter) against Kalman where there is one; writes
  surrogate/. Sets `surrogate`, `history`, `accuracy`."""
  from nk_keras.estimation import kalman
  from nk_keras.estimation import surrogate as sg
  dataset = est.dataset
  est.surrogate, est.history = _surrogate(est, dataset, est.out, "surrogate fit")
  accuracy = sg.held_out(est.surrogate, dataset)
  if est.use_kalman:
    with timed(est.timings, "Kalman on the Sobol draws", log=False):
      exact = kalman.log_likelihood(est.economy, est.observations, dataset["theta"]).numpy()
    val = dataset["is_validation"]
    top = exact >= np.quantile(exact, 0.9)
    top_val = exact[val] >= np.quantile(exact[val], 0.9)   # as `held_out`: never empty
    predicted = est.surrogate.predict(dataset["theta"][val])                  # [n_val]
    accuracy["surrogate_vs_kalman_validation"] = sg.errors(predicted, exact[val])
    accuracy["surrogate_vs_kalman_validation_top10pct"] = sg.errors(predicted[top_val],
                                                                    exact[val][top_val])
    accuracy["pf_vs_kalman_all_draws"] = sg.errors(dataset["log_likelihood"], exact)
    accuracy["pf_vs_kalman_top10pct"] = sg.errors(dataset["log_likelihood"][top], exact[top])
  est.accuracy = accuracy
  return est


def chains(est):
  """MCMC on the surrogate, and on the Kalman likelihood where it is the reference; writes
  chains_surrogate.npz (chains_kalman.npz). Sets `target`, `mcmc` and `result` (the
  surrogate's), `reference_mcmc` and `reference` (None until a reference is sampled),
  `samples` (name -> draws)."""
  from nk_keras.estimation import kalman, posterior
  o, economy, names = est.options, est.economy, est.names
  est.target = posterior.Target(economy, est.surrogate, names, est.fixed)
  est.mcmc = _chains(est, est.target, os.path.join(est.out, "chains_surrogate.npz"),
                     f"MCMC on the surrogate ({o.sampler})", "MCMC, surrogate")
  est.result = posterior.summary(names, est.mcmc["samples"])
  est.samples = {"surrogate": est.mcmc["samples"]}
  est.reference = est.reference_mcmc = None
  if est.use_kalman:
    exact_ll = kalman.log_likelihood_fn(economy, est.observations)
    ktarget = posterior.Target(economy, lambda t: exact_ll(est.target.full(t)), names, est.fixed)
    est.reference_mcmc = _chains(est, ktarget, os.path.join(est.out, "chains_kalman.npz"),
                                 f"MCMC on the Kalman likelihood ({o.sampler})", "MCMC, Kalman")
    est.reference = posterior.summary(names, est.reference_mcmc["samples"])
    est.samples["Kalman"] = est.reference_mcmc["samples"]
  return est


def exact_policy_reference(est):
  """Where the reference is the exact policy: the filter on the time-iteration policy at the
  same Sobol thetas with the same seed, its surrogate and its chains, as for the network;
  writes exact_policy/. Sets `exact_policy`, `exact_filt`, `exact_dataset`, `exact_surrogate`,
  `exact_accuracy` (its surrogate against its filter, and the network's filter against it on
  the draws both have), `reference_mcmc`, `reference`."""
  from nk_keras.estimation import particle_filter as pf_lib
  from nk_keras.estimation import posterior
  from nk_keras.estimation import surrogate as sg
  from nk_keras.reference.solved_policy import SolvedPolicy
  est.exact_policy = est.exact_filt = est.exact_accuracy = None
  if est.reference_kind != "exact policy":
    return est
  o, economy, names = est.options, est.economy, est.names
  where = os.path.join(est.out, "exact_policy")
  os.makedirs(where, exist_ok=True)
  est.exact_policy = SolvedPolicy(economy, n_grid=o.exact_grid, n_nodes=o.exact_nodes,
                                  quadrature="trapezoid", tol=EXACT_TOL)
  est.exact_filt = pf_lib.ParticleFilter(economy, est.exact_policy, est.observations,
                                         o.particles)
  dataset = _dataset(est, est.exact_filt, est.sobol, os.path.join(where, "dataset.npz"),
                     "exact policy: particle filter on the same Sobol draws")
  if est.refined is not None:
    dataset = sg.merge(dataset, _dataset(
        est, est.exact_filt, est.refined, os.path.join(where, "refine_dataset.npz"),
        "exact policy: particle filter on the same second-round draws"), o.draws)
  est.exact_dataset = dataset
  est.exact_surrogate, _ = _surrogate(est, dataset, where, "exact policy: surrogate fit")
  both_net = np.isin(est.dataset["index"], dataset["index"])
  both_exact = np.isin(dataset["index"], est.dataset["index"])
  exact_ll = dataset["log_likelihood"][both_exact]
  top = exact_ll >= np.quantile(exact_ll, 0.9)
  network_ll = est.dataset["log_likelihood"][both_net]
  est.exact_accuracy = {
      **sg.held_out(est.exact_surrogate, dataset),
      "pf_network_vs_exact_policy_all_draws": sg.errors(network_ll, exact_ll),
      "pf_network_vs_exact_policy_top10pct": sg.errors(network_ll[top], exact_ll[top]),
      "draws_without_equilibrium": int(dataset["dropped"])}
  target = posterior.Target(economy, est.exact_surrogate, names, est.fixed)
  est.reference_mcmc = _chains(est, target, os.path.join(where, "chains.npz"),
                               f"exact policy: MCMC on its surrogate ({o.sampler})",
                               "MCMC, exact policy")
  est.reference = posterior.summary(names, est.reference_mcmc["samples"])
  est.samples["exact policy"] = est.reference_mcmc["samples"]
  return est


def _center(est):
  """The true theta of simulated data, else the full theta at the posterior means."""
  if est.theta_true is not None:
    return est.theta_true
  return est.target.full(np.array([[est.result[n]["mean"] for n in est.names]])).numpy()[0]


def pf_study(est):
  """The particle filter against the reference at the true or estimated theta (bias and spread
  per particle count, the network and the exact policy); writes pf_convergence.png. The
  reference value is Kalman's, or the mean of the exact-policy filter at the largest count over
  as many other seeds. Sets `pf_results` and `exact_at` (the reference value), empty and None
  without a reference or counts."""
  from nk_keras import plots
  from nk_keras.estimation import figures as figures_lib
  from nk_keras.estimation import kalman
  from nk_keras.estimation import particle_filter as pf_lib
  o, economy = est.options, est.economy
  est.pf_results, est.exact_at = {}, None
  if not (est.reference_kind and est.pf_counts):
    return est
  at = _center(est)
  with timed(est.timings, f"PF vs {est.reference_kind} study"):
    if est.use_kalman:
      est.exact_at = float(kalman.log_likelihood(economy, est.observations, at[None]).numpy()[0])
      exact_policy, against = pf_lib.closed_form_policy(economy), "Kalman"
    else:
      exact_policy, most = est.exact_policy, max(est.pf_counts)
      filt = pf_lib.ParticleFilter(economy, exact_policy, est.observations, most)
      est.exact_at = float(np.mean([filt(at[None], seed=1000 + s)[0]
                                    for s in range(o.pf_replications)]))
      against = f"the exact-policy filter at {most} particles"
    for label, pol in (("network policy", est.filter_policy), ("exact policy", exact_policy)):
      est.pf_results[label] = pf_lib.bias_and_spread(
          economy, pol, est.observations, at[None], est.exact_at, est.pf_counts,
          o.pf_replications)
  plots.save(figures_lib.pf_convergence(
      est.pf_results, f"Particle filter vs {against} at "
      f"{'the true' if est.theta_true is not None else 'the estimated'}"
      f" theta ({o.pf_replications} seeds each)"), os.path.join(est.out, "pf_convergence.png"))
  return est


def figures(est):
  """Likelihood slices through the true or estimated theta (surrogate, filter, and Kalman or
  the exact-policy filter), posterior densities against the prior and trace plots:
  likelihood_slices.png, posterior_densities.png, trace.png."""
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
    # Outside the domain there is no equilibrium: no likelihood to draw.
    inside = economy.in_domain(flat.astype(np.float32)).numpy().reshape(shape)
    curves = {"surrogate": est.surrogate.predict(flat).reshape(shape),
              "particle filter": est.filt(flat, seed=o.seed).reshape(shape)}
    if est.use_kalman:
      curves["Kalman"] = kalman.log_likelihood(economy, est.observations,
                                               flat).numpy().reshape(shape)
    if est.exact_filt is not None:
      curves["particle filter, exact policy"] = est.exact_filt(flat, seed=o.seed).reshape(shape)
    curves = {k: np.where(inside & np.isfinite(v), v, np.nan) for k, v in curves.items()}
  plots.save(figures_lib.likelihood_slices(
      economy, names, grids, curves, center[idx],
      f"Log-likelihood through the {'true' if est.theta_true is not None else 'estimated'} "
      f"theta ({o.particles} particles)"), os.path.join(est.out, "likelihood_slices.png"))
  box = [[economy.box_low[i], economy.box_high[i]] for i in idx]
  plots.save(figures_lib.posterior_densities(
      economy, names, est.samples, box, prior_marginals(economy, idx),
      None if est.theta_true is None else est.theta_true[idx],
      f"Posterior: surrogate vs {est.reference_kind or 'prior'} ({o.sampler}, {o.chains} "
      f"chains)"), os.path.join(est.out, "posterior_densities.png"))
  plots.save(figures_lib.traces(economy, names, est.mcmc["samples"], "MCMC on the surrogate"),
             os.path.join(est.out, "trace.png"))
  return est


def prior_marginals(economy, idx, points=201):
  """Per estimated parameter, its grid over the box `[points]` and the prior's marginal density
  there `[points]` (the economy's prior is a product of independent marginals)."""
  import tensorflow as tf
  grid = np.linspace(economy.box_low, economy.box_high, points)                 # [points, P]
  density = np.exp(economy.prior.distribution.log_prob(tf.constant(grid, tf.float32)).numpy())
  return [(grid[:, i], density[:, i]) for i in idx]


def report(est):
  """Writes posterior.json (README, "Estimation") and samples.npz, and prints the posterior
  table. Returns the report."""
  o, economy, observations, fixed = est.options, est.economy, est.observations, est.fixed
  np.savez(os.path.join(est.out, "samples.npz"), names=np.array(est.names), **est.samples)
  settings = {
      "policy": os.path.abspath(o.policy), "economy": economy.name,
      "data": os.path.abspath(o.data) if o.data else observations.source,
      "observables": list(observations.names), "units": observations.units,
      "periods": observations.periods,
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
      "draws": o.draws, "refine": o.refine,
      "second_round": {"draws": second_round(o.draws, o.refine), "widen": WIDEN}
      if second_round(o.draws, o.refine) else None,
      "draws_kept": int(len(est.dataset["theta"])),
      "particles": o.particles, "validation": o.validation,
      "network_in_the_filter": (f"read from a table of {o.pf_table} points per theta"
                                if est.filter_policy is not est.policy else
                                "called at every particle"),
      "surrogate": {"width": o.width, "depth": o.depth, "activation": o.activation,
                    "ensemble": o.ensemble, "steps": o.steps, "batch": o.batch, "lr": o.lr,
                    "best_val_loss": float(min(est.history["val_loss"]))},
      "mcmc": _mcmc_report(est.mcmc),
      "seed": o.seed,
      "prior": (f"the economy's prior ({type(economy.prior.distribution).__name__} per "
                f"parameter on the box) at the full theta with fixed values inserted, zero "
                f"outside the domain where an equilibrium exists"),
      "reference": est.reference_kind,
      "exact_policy": None if est.exact_policy is None else {
          "solver": "time iteration", "grid": o.exact_grid, "nodes": o.exact_nodes,
          "tolerance": EXACT_TOL},
      "resumed": est.resumed,
  }
  kalman = est.reference_kind == "Kalman"
  exact = est.reference_kind == "exact policy"
  result = {"warnings": est.warnings, "parameters": est.result, "settings": settings,
            "kalman_reference": est.reference if kalman else None,
            "kalman_mcmc": _mcmc_report(est.reference_mcmc) if kalman else None,
            "exact_policy_reference": est.reference if exact else None,
            "exact_policy_mcmc": _mcmc_report(est.reference_mcmc) if exact else None,
            "accuracy": est.accuracy, "exact_policy_accuracy": est.exact_accuracy,
            "particle_filter_vs_reference": est.pf_results,
            "reference_log_likelihood_at_study_theta": est.exact_at, "timings_s": est.timings}
  with open(os.path.join(est.out, "posterior.json"), "w") as f:
    json.dump(result, f, indent=2)
  print()
  print(table(est.names, est.result, est.reference, est.theta_true, economy,
              est.reference_kind))
  for text in est.warnings:
    print(f"WARNING: {text}")
  print(f"wrote posterior.json, figures and files to {est.out}")
  return result


def _mcmc_report(run):
  return None if run is None else {k: v for k, v in run.items()
                                   if k not in ("samples", "proposal_cov")}


def table(names, result, reference, theta_true, economy, reference_kind=None):
  """The posterior as a Markdown table: per parameter the truth (if known), the surrogate's and
  the reference's (if any) means and 90 % intervals, R-hat and ESS."""
  head = "| parameter | " + ("true | " if theta_true is not None else "") + \
      "surrogate mean [q05, q95] | " + \
      (f"{reference_kind} mean [q05, q95] | " if reference else "") + "R-hat | ESS |"
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


STAGES = (data, likelihood_dataset, refine, fit_surrogate, chains, exact_policy_reference,
          pf_study, figures)


def run(options, out):
  """Every stage in order; returns the report written to `<out>/posterior.json`."""
  # Held from the first write (start's claim) to the report: a second run into `out` would mix
  # its stages' files with this one's.
  with contextlib.ExitStack() as held:
    est = start(options, out, held)
    for stage in STAGES:
      stage(est)
    return report(est)
