"""Observed data for estimation: simulated from a policy, or read from a user's CSV.

A dataset is `Observations(names, y [T, n_obs], me_var [n_obs])`: the observables (the
economy's `observable_names`, e.g. nk's `X`, `Pi` in log deviations or rank_zlb's output growth,
inflation and interest rate in annualised percent; optionally the states such as `zeta`), one
row per period, and the measurement-error variance assumed for each series. KMR fix the
measurement-error variance at a share of each series' variance (5 % in the paper, 10 % in their
code) rather than estimate it; so do we, and the variances travel with the data.
"""

import csv
import dataclasses
import math

import numpy as np

from nk_keras import simulation
from nk_keras.errors import UserError

MIN_PERIODS = 10   # fewer rows cannot say anything about persistence; almost surely a wrong file
FLOAT32_SQRT_MAX = math.sqrt(np.finfo(np.float32).max)   # ~1.8e19


class DataError(UserError):
  """A data file that cannot be used: missing column, non-numeric or non-finite entry, too short."""


@dataclasses.dataclass
class Observations:
  names: tuple            # observables, e.g. ("X", "Pi") or ("X", "Pi", "zeta")
  y: np.ndarray           # [T, n_obs] float64
  me_var: np.ndarray      # [n_obs] measurement-error variances assumed by the likelihood
  me_share: float         # me_var / variance of each series
  source: str = ""
  units: str = ""                 # what the numbers are in (`Economy.observable_units`)
  theta_true: np.ndarray = None   # [n_params] when simulated
  clean: np.ndarray = None        # [T, n_obs] the series before measurement error, if simulated

  @property
  def periods(self):
    return self.y.shape[0]


def check_names(economy, names):
  known = economy.observable_names(observe_state=True)
  unknown = [n for n in names if n not in known]
  if unknown:
    raise DataError(f"unknown observable(s) {', '.join(unknown)}; known: {', '.join(known)}")
  if len(set(names)) != len(names):
    raise DataError(f"observables named twice: {', '.join(names)}")


def simulate(economy, policy, theta, periods=100, me_share=0.1, observe_state=False, seed=0):
  """Observables (`economy.observable_names`) from `policy` at `theta` `[n_params]`, plus
  Gaussian measurement error whose variance is `me_share` times each clean series' sample
  variance. The state starts from its ergodic distribution (the filters assume a stationary
  start), a period before the first observation where the measurement needs last period's
  policies (`economy.observes_previous`)."""
  names = economy.observable_names(observe_state)
  lag = int(economy.observes_previous)
  states = simulation.state_paths(economy, theta, periods + lag, 1, seed, "ergodic",
                                  policy=policy)[:, 0]
  states = states.astype(np.float64)                                        # [T+lag, S]
  policies = simulation.evaluate(policy, states, theta).astype(np.float64)  # [T+lag, n_pol]
  thetas = np.tile(np.asarray(theta, np.float64), (periods, 1))
  clean = np.asarray(economy.observe(names, states[lag:], thetas, policies[lag:],
                                     (states[:periods], policies[:periods])))  # [T, n_obs]
  me_var = me_share * clean.var(axis=0)
  noise = np.random.default_rng([seed, 7]).standard_normal(clean.shape)
  y = clean + np.sqrt(me_var) * noise
  return Observations(names, y, me_var, me_share, f"simulated (seed {seed})",
                      economy.observable_units, np.asarray(theta, np.float64), clean)


def with_assumed_error(names, y, me_share, source="", units=""):
  """Observations for data whose measurement error is unknown: the assumed variance is
  `me_share / (1 + me_share)` of each observed series' variance, i.e. `me_share` times the
  variance of the signal if the data are signal plus such error."""
  y = np.asarray(y, np.float64)
  me_var = me_share / (1 + me_share) * y.var(axis=0)
  return Observations(tuple(names), y, me_var, me_share, source, units)


def read_csv(path, economy, me_share=0.1):
  """A user's CSV: a header naming one column per observable (`economy.observable_names`: nk's
  `X`, `Pi`, rank_zlb's `output_growth`, `inflation`, `interest_rate`; optionally the states
  such as `zeta`), one row per period, in `economy.observable_units`. Other columns (e.g.
  `period`) are ignored."""
  try:
    with open(path, newline="") as f:
      rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
  except UnicodeDecodeError:
    raise DataError(f"{path}: not a text CSV file") from None
  if not rows:
    raise DataError(f"{path}: empty file")
  header = [c.strip() for c in rows[0]]
  required = economy.observable_names()
  names = [n for n in economy.observable_names(observe_state=True) if n in header]
  missing = [n for n in required if n not in header]
  if missing:
    raise DataError(f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)}); "
                    f"expected {', '.join(required)} and optionally "
                    f"{', '.join(economy.state_names)}")
  if len(set(header)) != len(header):
    raise DataError(f"{path}: repeated column names in the header")
  columns = [header.index(n) for n in names]
  y = np.empty((len(rows) - 1, len(names)))
  for i, row in enumerate(rows[1:]):
    if len(row) != len(header):
      raise DataError(f"{path}: line {i + 2} has {len(row)} fields, the header {len(header)}")
    for j, c in enumerate(columns):
      try:
        y[i, j] = float(row[c])
      except ValueError:
        raise DataError(f"{path}: line {i + 2}, column {names[j]}: {row[c]!r} is not a number") \
            from None
      if not math.isfinite(y[i, j]):
        raise DataError(f"{path}: line {i + 2}, column {names[j]}: {row[c].strip()} is not finite")
  if y.shape[0] < MIN_PERIODS:
    raise DataError(f"{path}: {y.shape[0]} periods; at least {MIN_PERIODS} are needed")
  # The filter squares the data's errors in float32: beyond ~1.8e19 they overflow (and beyond
  # ~1e154 the float64 variance already does), and the likelihood is NaN everywhere.
  with np.errstate(over="ignore", invalid="ignore"):
    overflow = [n for n, v, m in zip(names, y.var(axis=0), np.abs(y).max(axis=0))
                if not (np.isfinite(v) and m < FLOAT32_SQRT_MAX)]
  if overflow:
    raise DataError(f"{path}: column(s) {', '.join(overflow)} too large for the likelihood to be "
                    f"computed (largest |value| {np.abs(y).max():.3g}); the data must be in "
                    f"{economy.observable_units}")
  if np.any(y.std(axis=0) == 0):
    constant = [n for n, s in zip(names, y.std(axis=0)) if s == 0]
    raise DataError(f"{path}: column(s) {', '.join(constant)} are constant")
  return with_assumed_error(names, y, me_share, path, economy.observable_units)


def check_likelihood(particle_filter, theta, data, seed=0):
  """A DataError naming the problem unless the log-likelihood of `data` at `theta` `[n_params]`
  is finite. Run before the long stages: data of finite but absurd size (in levels, or scaled
  by 1e20) overflow the filter's float32 and every stage after it would run on NaN."""
  value = float(particle_filter(np.asarray(theta)[None], seed=seed)[0])
  if not math.isfinite(value):
    largest = np.abs(data.y).max(axis=0)
    sizes = ", ".join(f"{n} {v:.3g}" for n, v in zip(data.names, largest))
    raise DataError(f"{data.source}: the log-likelihood of these data is {value} (not finite); "
                    f"the largest |values| ({sizes}) are far outside "
                    f"{data.units}")


# Below this spread (nats, 5th to 95th percentile over the box's draws) the likelihood cannot
# move the posterior off the prior. Data in the model's units spread it by hundreds of nats
# (nk, 100 periods: 400-2,000); data scaled 1e6 make the measurement error swamp the model and
# spread it by a fraction of a nat.
FLAT_NATS = 2.0


def flat_likelihood(log_likelihood, data, names):
  """A warning (text) if the log-likelihoods of the draws of the estimated `names` hardly vary:
  the posterior will be the prior, which looks like a perfect recovery when the prior is centred
  on the truth. None otherwise."""
  values = np.asarray(log_likelihood, np.float64)
  values = values[np.isfinite(values)]
  if values.size < 2:
    return None
  spread = float(np.percentile(values, 95) - np.percentile(values, 5))
  if spread >= FLAT_NATS:
    return None
  largest = ", ".join(f"{n} {v:.3g}" for n, v in zip(data.names, np.abs(data.y).max(axis=0)))
  return (f"the log-likelihood is flat over the box: it varies by {spread:.2g} nats between the "
          f"5th and 95th percentiles of {values.size} draws, so the data say next to nothing "
          f"about {', '.join(names)} and the posterior is the prior. Data in the wrong units do "
          f"this: they must be in {data.units} (largest |values| here: {largest})")


def write_csv(path, data):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["period", *data.names])
    for t, row in enumerate(data.y):
      w.writerow([t, *(repr(float(v)) for v in row)])
