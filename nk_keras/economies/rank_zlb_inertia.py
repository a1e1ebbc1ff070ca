"""RANK with a zero lower bound, a TFP shock and an inertial rule (docs/models.md, "Economy 3").

rank_zlb's economy with what every estimated NK model with a ZLB has: technology shocks and a
rule that smooths the shadow rate. Three states: the preference shock `zeta`, log TFP `a` and
last period's shadow rate `rstar_lag` (log R*_{t-1} - log Rbar), the last one endogenous: its
law of motion is today's rule. Nothing here is one-dimensional or proportional to the state,
and there is no closed form: scales come from the library's perturbation of these equations.

Policies, in the units the residuals and the network use: `N` = log N (hours) and `Pi` =
log(Pi / Pibar). Output is Y = A N = C. Served outputs are levels: N, gross quarterly Pi, the
gross rate R (the ZLB applied) and the gross shadow rate Rstar, so a user can step the served
model forward (rstar_lag' = log Rstar - log Rbar).

With `rho_R = 0` and `sigma_a = 0` (a = 0) the residuals are rank_zlb's.
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from nk_keras.economies.base import Economy
from nk_keras.economies.rank_zlb import FIXED

tfd = tfp.distributions

LOG_RBAR = FIXED["log_Pibar"] - math.log(FIXED["beta"])


class RankZLBInertia(Economy):
  name = "rank_zlb_inertia"
  param_names = ("theta_pi", "theta_y", "phi", "rho_R", "rho_zeta", "sigma_zeta", "rho_a",
                 "sigma_a")
  state_names = ("zeta", "a", "rstar_lag")
  endogenous_states = ("rstar_lag",)
  shock_names = ("eps_zeta", "eps_a")
  policy_names = ("N", "Pi")
  residual_names = ("Euler", "NKPC")
  box_low = np.array([1.5, 0.05, 700.0, 0.0, 0.5, 0.01, 0.8, 0.002])
  box_high = np.array([2.5, 0.5, 1300.0, 0.8, 0.9, 0.025, 0.97, 0.01])
  calibration = np.array([2.0, 0.25, 1000.0, 0.5, 0.7, 0.02, 0.9, 0.005])
  # rank_zlb's (KMR's) prior for its five; ours for the rule's inertia and the TFP shock, centred
  # on the synthetic-data truth with about a quarter of the box as std.
  prior_mean = calibration
  prior_std = np.array([0.1, 0.05, 50.0, 0.2, 0.05, 0.0025, 0.04, 0.002])
  fixed = FIXED
  # Fitted as rank_zlb's to 2,400 uniform draws of the box labelled by time iteration on a
  # coarse grid (1,165 without a stable equilibrium: a persistent TFP shock, rho_a, is what
  # most often takes it away), shifted so that none of them is inside, plus a margin; it keeps
  # 88.7 % of the converged draws (docs/existence.md, docs/existence/inertia_rule.csv).
  domain_rule = np.array([
      -0.055, -0.154, 0.271, -0.253, -0.390, 0.445, 0.360, 0.949, 0.466, 0.076, 0.024, -0.036,
      -0.015, 0.201, -0.013, 0.088, 0.110, -0.084, 0.046, -0.197, -0.207, 0.327, 0.080, -0.124,
      0.144, 0.153, 0.076, 0.038, -0.144, -0.173, -0.235, 0.078, -0.319, 0.211, -0.085, 0.474,
      0.364, -1.000, -0.383, 0.137, -0.617, -0.229, 0.883, 0.848, 0.012
  ])
  labels = {"theta_pi": "θ_π, response to inflation", "theta_y": "θ_y, response to output",
            "phi": "φ, Rotemberg adjustment cost", "rho_R": "ρ_R, rule inertia",
            "rho_zeta": "ρ_ζ, preference persistence", "sigma_zeta": "σ_ζ, preference std",
            "rho_a": "ρ_a, TFP persistence", "sigma_a": "σ_a, TFP std",
            "zeta": "ζ, preference shock", "a": "a, log TFP",
            "rstar_lag": "log R*_{t-1} - log R̄", "N": "N, hours", "Pi": "Π, inflation",
            "R": "R, policy rate", "Rstar": "R*, shadow rate"}
  # Residuals mapped to policy errors by time iteration's Newton step, as rank_zlb's.
  error_shape = "today"
  normalizations = ("ergodic", "ergodic_slope", "kmr")
  # What a bare `--economy=rank_zlb_inertia` trains: the shipped model's recipe
  # (configs/rank_zlb_inertia.flags; BUILD_NOTES.md, "Bring your own model").
  training_defaults = {"normalization": "ergodic_slope", "iterations": 9000, "mc": 4,
                       "stratified": True, "unbiased": True}
  observables = ("output_growth", "inflation", "interest_rate")
  observes_previous = True
  observable_units = "annualised percent (2.0 is 2 % a year)"

  constraint = "ZLB"
  display_units = {"N": (100.0, 0.0, "100 log N (%)"),
                   "Pi": (400.0, FIXED["log_Pibar"], "annualised inflation (%)"),
                   "R": (400.0, 0.0, "annualised policy rate (%)"),
                   "Rstar": (400.0, 0.0, "annualised shadow rate (%)")}

  eval_theta = 40       # N-dimensional time iteration: 20-60 s per theta on 2 cores

  def reference(self, theta, progress=False):
    """Time iteration on a tensor grid of the three states (`time_iteration_nd`), at `theta`
    `[n, n_params]` (NumPy); `valid` marks where a stable equilibrium was found."""
    from nk_keras.reference import time_iteration_nd
    return time_iteration_nd.solve(self, theta, progress=progress)

  def domain_reason(self):
    return ("no stable equilibrium: the shocks are too persistent or volatile for this policy "
            "rule (time iteration does not converge; docs/existence.md)")

  def default_prior(self):
    f = lambda a: tf.constant(a, tf.float32)
    return tfd.Independent(tfd.TruncatedNormal(f(self.prior_mean), f(self.prior_std),
                                               f(self.box_low), f(self.box_high)), 1)

  def shadow_rate(self, state, theta, today):
    """Today's shadow rate log R* - log Rbar `[...]`: the inertial rule, from last period's
    (`state` `[..., n_state]`) and today's policies `[..., n_pol]`."""
    p = self.unpack(theta)
    target = (p["theta_pi"] * today[..., 1]
              + p["theta_y"] * (state[..., 1] + today[..., 0] - math.log(FIXED["Ybar"])))
    return p["rho_R"] * state[..., 2] + (1 - p["rho_R"]) * target

  def constraint_slack(self, state, theta, policies):
    return LOG_RBAR + self.shadow_rate(state, theta, policies)

  def log_rate(self, state, theta, today):
    """log R `[...]`: the shadow rate floored at a gross rate of one."""
    return self.floor(LOG_RBAR + self.shadow_rate(state, theta, today))

  def step(self, state, theta, eps, today):
    p = self.unpack(theta)                     # each [batch]; broadcast against eps [..., b, 2]
    zeta = p["rho_zeta"] * state[:, 0] + p["sigma_zeta"] * eps[..., 0]
    a = p["rho_a"] * state[:, 1] + p["sigma_a"] * eps[..., 1]
    rstar = self.shadow_rate(state, theta, today) + tf.zeros_like(zeta)
    return tf.stack([zeta, a, rstar], axis=-1)

  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    f = FIXED
    p = self.unpack(theta)
    n, pi = today[:, 0], today[:, 1]                              # [batch]
    n1, pi1 = tomorrow[..., 0], tomorrow[..., 1]                  # [k, batch]
    log_R = self.log_rate(state, theta, today)
    change = self.step(state, theta, eps, today) - state          # [k, batch, 3]
    # Output growth, log Y'/Y = (a' - a) + (n' - n).
    growth = change[..., 1] + n1 - n
    euler = (math.log(f["beta"]) - f["log_Pibar"] + log_R
             + tf.math.log1p(self.expect(tf.math.expm1(
                 change[..., 0] - f["sigma"] * growth - pi1), weights)))
    # MC = chi N^eta C^sigma / A with C = A N: log MC = (eta + sigma) n + (sigma - 1) a.
    marginal = tf.math.expm1((f["eta"] + f["sigma"]) * n + (f["sigma"] - 1) * state[:, 1]
                             + math.log(f["chi"] * f["eps"] / (f["eps"] - 1)))
    future = self.expect(tf.exp(f["log_Pibar"] - log_R + 2 * pi1 + growth) * tf.math.expm1(pi1),
                         weights)
    nkpc = tf.math.expm1(pi) * tf.exp(pi) - (f["eps"] - 1) / p["phi"] * marginal - future
    return tf.stack([euler, nkpc], axis=1)

  def outputs(self, state, theta, policies):
    return {"N": tf.exp(policies[:, 0]), "Pi": tf.exp(policies[:, 1] + FIXED["log_Pibar"]),
            "R": tf.exp(self.log_rate(state, theta, policies)),
            "Rstar": tf.exp(LOG_RBAR + self.shadow_rate(state, theta, policies))}

  def policies_from_outputs(self, outputs):
    return tf.stack([tf.math.log(outputs["N"]),
                     tf.math.log(outputs["Pi"]) - FIXED["log_Pibar"]], axis=1)

  def measure(self, state, theta, policies, previous):
    """rank_zlb's observables (KMR's eq. 43), annualised percent: output growth
    400 (Y / Y_-1 - 1) with log Y = a + log N, inflation 400 (Pi - 1), the rate 400 (R - 1)."""
    n, pi = policies[..., 0], policies[..., 1]
    last_state, last = previous
    growth = state[..., 1] + n - last_state[..., 1] - last[..., 0]
    return {"output_growth": 400 * tf.math.expm1(growth),
            "inflation": 400 * tf.math.expm1(pi + FIXED["log_Pibar"]),
            "interest_rate": 400 * tf.math.expm1(self.log_rate(state, theta, policies))}
