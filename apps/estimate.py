"""Estimate the model's parameters from data with a neural policy, KMR's way.

  python -m apps.estimate --policy=saved_models/nk_cached --data=data.csv --out=runs/estimate
  python -m apps.estimate --policy=saved_models/nk_cached --out=runs/estimate   # synthetic data

Stages: data (a CSV with columns X, Pi and optionally zeta, one row per period, in model units;
or, without --data, a simulation from the policy at --theta with measurement error), a particle
filter over --draws Sobol points of the box of the estimated parameters, a surrogate network
fitted to those log-likelihoods, MCMC on the surrogate, and, when the economy has a linear
state-space form, the same MCMC on the exact Kalman likelihood as the reference.

Writes to --out: posterior.json (per estimated parameter mean, std, q05, q95, rhat, ess; the
settings, the measurement-error variances assumed, the Kalman reference, the surrogate's and the
particle filter's errors, wall times), data.csv, dataset.npz, samples.npz, surrogate/ (Keras file
and SavedModel), and figures likelihood_slices.png, posterior_densities.png, trace.png,
pf_convergence.png.
"""

import os
import sys

if not __package__:  # run as a file, `python apps/<app>.py`: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import json
import time

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("policy", None, "Policy SavedModel directory (the export contract).")
flags.DEFINE_string("data", None, "CSV of observables (X, Pi, optionally zeta); default: simulate.")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_string("estimate", "", "Parameters to estimate, comma-separated; default all but "
                    "--fixed.")
flags.DEFINE_string("fixed", "", "Fixed parameters, name=value,...; others not estimated sit at "
                    "the true theta (simulated data) or the calibration.")
flags.DEFINE_string("theta", "", "Simulated data: the true parameters, name=value,...; others at "
                    "the calibration.")
flags.DEFINE_integer("periods", 100, "Simulated data: periods.", lower_bound=10)
flags.DEFINE_boolean("observe_zeta", False, "Simulated data: observe zeta too (KMR's code does).")
flags.DEFINE_float("me_share", 0.1, "Measurement-error variance as a share of each series' "
                   "variance (KMR: 0.05 paper, 0.1 code).", lower_bound=1e-4, upper_bound=10.0)
flags.DEFINE_integer("data_seed", 0, "Simulated data: seed.", lower_bound=0)
flags.DEFINE_integer("draws", 10000, "Sobol draws of theta for the surrogate.", lower_bound=20)
flags.DEFINE_integer("particles", 100, "Particles of the filter.", lower_bound=2)
flags.DEFINE_float("validation", 0.1, "Share of draws held out.", lower_bound=0.01,
                   upper_bound=0.5)
flags.DEFINE_integer("width", 128, "Surrogate: units per hidden layer.", lower_bound=1)
flags.DEFINE_integer("depth", 4, "Surrogate: hidden layers.", lower_bound=1)
flags.DEFINE_string("activation", "celu", "Surrogate: activation (a Keras name).")
flags.DEFINE_integer("steps", 30000, "Surrogate: Adam steps (about 850 epochs of 9,000 draws).",
                     lower_bound=1)
flags.DEFINE_integer("batch", 256, "Surrogate: batch size.", lower_bound=1)
flags.DEFINE_float("lr", 1e-3, "Surrogate: initial learning rate (cosine decay).", lower_bound=0)
flags.DEFINE_enum("sampler", "rwmh", ["rwmh", "hmc", "nuts"], "MCMC kernel.")
flags.DEFINE_integer("chains", 16, "MCMC chains (vectorised: more chains cost little more time).",
                     lower_bound=2)
flags.DEFINE_integer("samples", 20000, "MCMC draws kept per chain.", lower_bound=10)
flags.DEFINE_integer("burnin", 5000, "MCMC burn-in per chain (after the RWMH pilot runs).",
                     lower_bound=0)
flags.DEFINE_integer("pilot_steps", 2000, "RWMH: steps of each of 4 proposal-tuning runs.",
                     lower_bound=10)
flags.DEFINE_boolean("kalman", True, "Also sample the exact (Kalman) posterior, if the economy "
                     "has a state-space form.")
flags.DEFINE_integer("slice_points", 25, "Points per likelihood slice.", lower_bound=3)
flags.DEFINE_string("pf_study", "10,100,1000,10000", "Particle counts of the PF-vs-Kalman study "
                    "('' to skip).")
flags.DEFINE_integer("pf_replications", 20, "Seeds per particle count in the study.",
                     lower_bound=2)
flags.DEFINE_integer("seed", 0, "Seed of the filter, the fit and the MCMC.", lower_bound=0)
flags.mark_flags_as_required(["policy", "out"])


def _split_ok(f):
  from nk_keras.estimation import surrogate
  return 1 <= surrogate.validation_count(f["draws"], f["validation"]) < f["draws"]


flags.register_multi_flags_validator(
    ["draws", "validation"], _split_ok,
    "--validation x --draws must hold out at least one draw (no validation draw otherwise)")


def parse_names(text):
  return [s.strip() for s in text.split(",") if s.strip()]


def choose_parameters(economy, estimate, fixed_values):
  """Estimated names in economy order from --estimate and --fixed (unknown names and fixed
  values outside the box refused)."""
  cli.check_names(economy, "--estimate", estimate)
  cli.theta_with(economy, "--fixed", fixed_values)
  both = sorted(set(estimate) & set(fixed_values))
  if both:
    raise cli.UsageError(f"{', '.join(both)} both estimated and fixed")
  chosen = [n for n in economy.param_names
            if (n in estimate if estimate else n not in fixed_values)]
  if not chosen:
    raise cli.UsageError("no parameter left to estimate")
  return chosen


def timed(timings, name, log=True):
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


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Syntax first: fails before TensorFlow loads.
  fixed_values = cli.parse_assignments("--fixed", FLAGS.fixed)
  true_values = cli.parse_assignments("--theta", FLAGS.theta)
  estimate = parse_names(FLAGS.estimate)
  if FLAGS.data and FLAGS.theta:
    raise cli.UsageError("--theta sets the truth of simulated data; it has no use with --data")
  try:
    pf_counts = [int(s) for s in parse_names(FLAGS.pf_study)]
  except ValueError:
    raise cli.UsageError(f"--pf_study: expected particle counts like 10,100,1000, got "
                         f"{FLAGS.pf_study!r}") from None
  if any(n < 2 for n in pf_counts):
    raise cli.UsageError("--pf_study: particle counts must be at least 2")

  import numpy as np
  import tensorflow as tf
  # TFP's ESS casts its FFT's complex result to real and TF warns about it on every call.
  tf.get_logger().setLevel("ERROR")
  from nk_keras import export, plots
  from nk_keras.estimation import data as data_lib
  from nk_keras.estimation import figures, kalman, posterior
  from nk_keras.estimation import particle_filter as pf_lib
  from nk_keras.estimation import surrogate as sg

  policy = export.LoadedPolicy(FLAGS.policy)
  economy = policy.economy
  names = choose_parameters(economy, estimate, fixed_values)
  out = cli.writable_dir(FLAGS.out)
  timings = {}

  with timed(timings, "data"):
    if FLAGS.data:
      if not os.path.isfile(FLAGS.data):
        raise cli.UsageError(f"--data: no file at {FLAGS.data!r}")
      observations = data_lib.read_csv(FLAGS.data, economy, FLAGS.me_share)
      theta_true = None
      base = economy.theta_from({})
    else:
      theta_true = cli.theta_with(economy, "--theta", true_values)
      observations = data_lib.simulate(economy, policy, theta_true, FLAGS.periods,
                                       FLAGS.me_share, FLAGS.observe_zeta, FLAGS.data_seed)
      base = theta_true
    fixed = economy.theta_from({**{n: float(v) for n, v in zip(economy.param_names, base)},
                                **fixed_values}).astype(np.float64)
    data_lib.write_csv(os.path.join(out, "data.csv"), observations)
  print(f"{observations.periods} periods of {', '.join(observations.names)} "
        f"({observations.source}); estimating {', '.join(names)}")

  try:
    economy.state_space(economy.theta_from({})[None].astype(np.float64))
    exact_available = True
  except NotImplementedError:
    exact_available = False
  use_kalman = FLAGS.kalman and exact_available
  idx = [economy.param_names.index(n) for n in names]

  filt = pf_lib.ParticleFilter(economy, policy, observations, FLAGS.particles)
  data_lib.check_likelihood(filt, fixed, observations, FLAGS.seed)
  with timed(timings, "particle filter on Sobol draws"):
    dataset = sg.make_dataset(economy, filt, names, fixed, FLAGS.draws, seed=FLAGS.seed,
                              validation=FLAGS.validation, progress=True)
  sg.save_dataset(os.path.join(out, "dataset.npz"), dataset, names)
  timings["particle filter, thetas per second"] = round(FLAGS.draws / dataset["seconds"], 1)

  with timed(timings, "surrogate fit"):
    surrogate, history = sg.fit(economy, dataset, names, fixed, FLAGS.width, FLAGS.depth,
                                FLAGS.activation, FLAGS.steps, FLAGS.batch, FLAGS.lr,
                                FLAGS.seed, progress=True)
  val = dataset["is_validation"]
  predicted = surrogate.predict(dataset["theta"])
  accuracy = {"surrogate_vs_pf_validation": sg.errors(predicted[val],
                                                      dataset["log_likelihood"][val])}
  if use_kalman:
    with timed(timings, "Kalman on the Sobol draws", log=False):
      exact = kalman.log_likelihood(economy, observations, dataset["theta"]).numpy()
    top = val & (exact >= np.quantile(exact, 0.9))
    accuracy["surrogate_vs_kalman_validation"] = sg.errors(predicted[val], exact[val])
    accuracy["surrogate_vs_kalman_validation_top10pct"] = sg.errors(predicted[top], exact[top])
    accuracy["pf_vs_kalman_all_draws"] = sg.errors(dataset["log_likelihood"], exact)
    accuracy["pf_vs_kalman_top10pct"] = sg.errors(dataset["log_likelihood"][exact >= np.quantile(
        exact, 0.9)], exact[exact >= np.quantile(exact, 0.9)])
  surrogate.save(os.path.join(out, "surrogate"), metadata={
      "policy": os.path.abspath(FLAGS.policy), "draws": FLAGS.draws,
      "particles": FLAGS.particles, "steps": FLAGS.steps, "accuracy": accuracy})

  chain_settings = dict(n_chains=FLAGS.chains, n_samples=FLAGS.samples, n_burnin=FLAGS.burnin,
                        sampler=FLAGS.sampler, seed=FLAGS.seed, pilot_steps=FLAGS.pilot_steps,
                        progress=True)
  with timed(timings, f"MCMC on the surrogate ({FLAGS.sampler})"):
    target = posterior.Target(economy, surrogate, names, fixed)
    run = posterior.sample(target, desc="MCMC, surrogate", **chain_settings)
  result = posterior.summary(names, run["samples"])
  samples = {"surrogate": run["samples"]}
  reference = None
  if use_kalman:
    with timed(timings, f"MCMC on the Kalman likelihood ({FLAGS.sampler})"):
      exact_ll = kalman.log_likelihood_fn(economy, observations)
      ktarget = posterior.Target(economy, lambda t: exact_ll(target.full(t)), names, fixed)
      krun = posterior.sample(ktarget, desc="MCMC, Kalman", **chain_settings)
    reference = posterior.summary(names, krun["samples"])
    samples["Kalman"] = krun["samples"]
  np.savez(os.path.join(out, "samples.npz"), names=np.array(names), **samples)

  pf_study, exact_at = {}, None
  if use_kalman and pf_counts:
    at = theta_true if theta_true is not None else target.full(
        np.array([[result[n]["mean"] for n in names]])).numpy()[0]
    exact_at = float(kalman.log_likelihood(economy, observations, at[None]).numpy()[0])
    with timed(timings, "PF vs Kalman study"):
      for label_, pol in (("network policy", policy),
                          ("closed-form policy", pf_lib.closed_form_policy(economy))):
        pf_study[label_] = pf_lib.bias_and_spread(economy, pol, observations, at[None], exact_at,
                                                  pf_counts, FLAGS.pf_replications)
    plots.save(figures.pf_convergence(pf_study, f"Particle filter vs Kalman at "
                                      f"{'the true' if theta_true is not None else 'the estimated'}"
                                      f" theta ({FLAGS.pf_replications} seeds each)"),
               os.path.join(out, "pf_convergence.png"))

  with timed(timings, "likelihood slices"):
    center = theta_true if theta_true is not None else target.full(
        np.array([[result[n]["mean"] for n in names]])).numpy()[0]
    grids = np.stack([np.linspace(economy.box_low[i], economy.box_high[i], FLAGS.slice_points)
                      for i in idx])                                              # [k, G]
    thetas = np.tile(center, (len(names), FLAGS.slice_points, 1))
    for j, i in enumerate(idx):
      thetas[j, :, i] = grids[j]
    flat = thetas.reshape(-1, economy.n_params)
    shape = grids.shape
    curves = {"surrogate": surrogate.predict(flat).reshape(shape),
              "particle filter": filt(flat, seed=FLAGS.seed).reshape(shape)}
    if use_kalman:
      curves["Kalman"] = kalman.log_likelihood(economy, observations, flat).numpy().reshape(shape)
  plots.save(figures.likelihood_slices(
      names, grids, curves, center[idx],
      f"Log-likelihood through the {'true' if theta_true is not None else 'estimated'} theta "
      f"({FLAGS.particles} particles)"), os.path.join(out, "likelihood_slices.png"))
  box = [[economy.box_low[i], economy.box_high[i]] for i in idx]
  plots.save(figures.posterior_densities(
      names, samples, box, None if theta_true is None else theta_true[idx],
      f"Posterior: surrogate vs exact likelihood ({FLAGS.sampler}, {FLAGS.chains} chains)"),
      os.path.join(out, "posterior_densities.png"))
  plots.save(figures.traces(names, run["samples"], "MCMC on the surrogate"),
             os.path.join(out, "trace.png"))

  settings = {
      "policy": os.path.abspath(FLAGS.policy), "economy": economy.name,
      "data": os.path.abspath(FLAGS.data) if FLAGS.data else observations.source,
      "observables": list(observations.names), "periods": observations.periods,
      "measurement_error": {"share": FLAGS.me_share,
                            "variance": dict(zip(observations.names,
                                                 map(float, observations.me_var))),
                            "rule": ("share x sample variance of each clean simulated series"
                                     if not FLAGS.data else
                                     "share/(1+share) x sample variance of each observed series")},
      "estimated": names,
      "fixed": {n: float(fixed[i]) for i, n in enumerate(economy.param_names) if n not in names},
      "true_theta": None if theta_true is None else
      {n: float(str(v)) for n, v in zip(economy.param_names, theta_true)},
      "draws": FLAGS.draws, "particles": FLAGS.particles, "validation": FLAGS.validation,
      "surrogate": {"width": FLAGS.width, "depth": FLAGS.depth, "activation": FLAGS.activation,
                    "steps": FLAGS.steps, "batch": FLAGS.batch, "lr": FLAGS.lr,
                    "best_val_loss": float(min(history["val_loss"]))},
      "mcmc": {k: v for k, v in run.items() if k not in ("samples", "proposal_cov")},
      "seed": FLAGS.seed,
      "prior": "economy prior (uniform on the box) at the full theta with fixed values inserted",
  }
  report = {"parameters": result, "settings": settings, "kalman_reference": reference,
            "kalman_mcmc": None if reference is None else
            {k: v for k, v in krun.items() if k not in ("samples", "proposal_cov")},
            "accuracy": accuracy, "particle_filter_vs_kalman": pf_study,
            "kalman_log_likelihood_at_study_theta": exact_at, "timings_s": timings}
  with open(os.path.join(out, "posterior.json"), "w") as f:
    json.dump(report, f, indent=2)

  print()
  print(table(names, result, reference, theta_true, economy))
  print(f"wrote posterior.json, figures and files to {out}")


def table(names, result, reference, theta_true, economy):
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


def run():
  """The console script `nk-estimate`."""
  cli.run(main)


if __name__ == "__main__":
  run()
