"""Estimate the model's parameters from data with a neural policy, KMR's way.

  python -m apps.estimate --policy=saved_models/nk_cached --data=data.csv --out=runs/estimate
  python -m apps.estimate --policy=saved_models/nk_cached --out=runs/estimate   # synthetic data
  python -m apps.estimate --policy=saved_models/rank_zlb --out=runs/estimate_zlb

Stages: data (a CSV with a header naming the economy's observables, one row per period: nk's X,
Pi (optionally zeta) in log deviations, rank_zlb's output_growth, inflation, interest_rate in
annualised percent; or, without --data, a simulation of the reference solution at --theta with
measurement error), a particle filter over --draws Sobol points of the box of the estimated
parameters, a surrogate network fitted to those log-likelihoods, MCMC on the surrogate, and a
reference posterior: the same MCMC on the exact Kalman likelihood where the economy has a linear
state-space form, else the same pipeline with the time-iteration policy in place of the network.

Writes to --out: posterior.json (per estimated parameter mean, std, q05, q95, rhat, ess; the
settings, the measurement-error variances assumed, the reference posterior, the surrogate's and
the particle filter's errors, wall times), run.json, data.csv, dataset.npz, chains_*.npz,
samples.npz, surrogate/ (Keras file and SavedModel), exact_policy/, and figures
likelihood_slices.png, posterior_densities.png, trace.png, pf_convergence.png. Rerun with the
same flags, an interrupted run continues from its finished stages. The stages are
nk_keras.estimation.pipeline's, callable from Python too; the flags are made from its
EstimateOptions.
"""

from absl import flags

from nk_keras import cli
from nk_keras.estimation import pipeline

FLAGS = flags.FLAGS

cli.define_flags(pipeline.EstimateOptions, pipeline.CHECKS, module=__name__)
flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["policy", "out"])


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  pipeline.run(cli.options_from_flags(pipeline.EstimateOptions), FLAGS.out)


def run():
  """The console script `nk-estimate`."""
  cli.run(main)


if __name__ == "__main__":
  run()
