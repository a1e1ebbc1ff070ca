"""KMR's RANK model with an occasionally binding zero lower bound (their proof of concept 2).

A representative household, Rotemberg pricing, a Taylor rule floored at a gross rate of one,
one preference shock `zeta` (docs/models.md has the equations and where they come from).

Policies, in the units the residuals and the network use: `N` = log N (hours = output =
consumption) and `Pi` = log(Pi / Pibar) (inflation's log deviation from target). The served
outputs are levels: N, gross quarterly Pi and the gross rate R with the ZLB applied.

The residuals are written with `expm1`/`log1p` around the deterministic steady state: every
term is a small deviation, so float32 keeps ~1e-9 of them where `1 - beta * R * E[...]` would
cancel down to ~6e-8.
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from nk_keras.economies.base import IndependentStates

tfd = tfp.distributions

FIXED = {"beta": 0.9975, "sigma": 1.0, "eta": 1.0, "eps": 11.0, "chi": 0.91,
         "log_Pibar": 0.005, "Ybar": 1.0}


class RankZLB(IndependentStates):
  name = "rank_zlb"
  param_names = ("theta_pi", "theta_y", "phi", "rho_zeta", "sigma_zeta")
  state_names = ("zeta",)
  shock_names = ("eps_zeta",)
  policy_names = ("N", "Pi")
  residual_names = ("Euler", "NKPC")
  box_low = np.array([1.5, 0.05, 700.0, 0.5, 0.01])
  box_high = np.array([2.5, 0.5, 1300.0, 0.9, 0.025])
  calibration = np.array([2.0, 0.25, 1000.0, 0.7, 0.02])   # KMR's true values (Table 5)
  prior_mean = np.array([2.0, 0.25, 1000.0, 0.7, 0.02])
  prior_std = np.array([0.1, 0.05, 50.0, 0.05, 0.0025])
  fixed = FIXED
  # Fitted to 4,000 uniform draws of the box labelled by time iteration (648 without a stable
  # equilibrium), shifted so that none of them is inside, plus a margin; on 1,000 fresh draws no
  # non-converged theta is inside and 97.7 % of the converged ones are (docs/existence.md,
  # docs/existence/existence_rule.csv).
  domain_rule = np.array([
      -0.477, -0.362, 0.375, -0.198, 0.867, 0.862, 0.081, -0.215, -0.041, 0.435, -0.008, 0.107,
      -0.052, -0.664, 1.000, 0.115, -0.154, -0.102, 0.526, 0.080, 0.190
  ])
  # A preference shock raises demand today: hours and inflation rise with zeta everywhere, at the
  # ZLB more steeply (the rate cannot fall to lean against a fall in zeta).
  response_signs = ((1.0, 1.0),)
  labels = {"theta_pi": "θ_π, response to inflation", "theta_y": "θ_y, response to output",
            "phi": "φ, Rotemberg adjustment cost", "rho_zeta": "ρ_ζ, shock persistence",
            "sigma_zeta": "σ_ζ, shock std", "zeta": "ζ, preference shock", "N": "N, hours",
            "Pi": "Π, inflation", "R": "R, policy rate"}
  # Residuals are mapped to policy errors by time iteration's Newton step (tomorrow held): on a
  # trained network these implied errors correlate with the true errors (0.55 for N, 0.29 for
  # Pi) where a persistent level error's Jacobian, near-singular in places, does not (-0.28,
  # -0.07); trained so, errors fell 2-3x (BUILD_NOTES.md, "rank_zlb").
  error_shape = "today"
  accuracy_levels = tuple(np.arange(-2.5, 2.51, 0.5))
  calibration_state = 0.0
  eval_theta = 500       # time iteration: 0.2-1 s per theta
  # KMR's Table 5 estimation has 500 periods and 15,000 Sobol draws. The posterior is a small
  # corner of this box (25 of those draws within 10 log points of the best), so 4,000 Sobol
  # draws and 2,000 where the first posterior is agree better with the exact-policy posterior
  # in 40 % of the filtering (BUILD_NOTES.md, "A second round of draws").
  estimation_sizes = {"periods": 500, "draws": 4_000, "refine": 0.5}
  # The shipped model's recipe (configs/rank_zlb.flags): fitted to time iteration, since the
  # residual loss stops short of the bar here (BUILD_NOTES.md, "rank_zlb").
  training_defaults = {"regime": "distill", "iterations": 100_000, "batch": 1024,
                       "normalization": "ergodic", "optimizer": "adamw"}
  observables = ("output_growth", "inflation", "interest_rate")
  observes_previous = True
  observable_units = "annualised percent (2.0 is 2 % a year)"
  constraint = "ZLB"
  display_units = {"N": (100.0, 0.0, "100 log N (%)"),
                   "Pi": (400.0, FIXED["log_Pibar"], "annualised inflation (%)"),
                   "R": (400.0, 0.0, "annualised policy rate (%)")}
  # Inside the box and where time iteration finds an equilibrium, with ZLB frequencies from ~2 %
  # to ~20 %.
  showcase = ({"theta_pi": 1.6, "theta_y": 0.1}, {"sigma_zeta": 0.025, "rho_zeta": 0.6},
              {"rho_zeta": 0.8, "sigma_zeta": 0.015})
  reference_options = dict(n_grid=1001, n_nodes=80, quadrature="trapezoid", tol=1e-11)

  def default_prior(self):
    """KMR's prior: independent normals truncated to the box (mean, std of docs/models.md, "Economy 2")."""
    f = lambda a: tf.constant(a, tf.float32)
    return tfd.Independent(tfd.TruncatedNormal(f(self.prior_mean), f(self.prior_std),
                                               f(self.box_low), f(self.box_high)), 1)

  def domain_reason(self):
    return ("no stable equilibrium: the preference shock is too persistent or volatile for "
            "this policy rule (time iteration does not converge; docs/existence.md)")

  def ergodic_std(self, theta):
    p = self.unpack(theta)
    return (p["sigma_zeta"] / tf.sqrt(1 - p["rho_zeta"] ** 2))[:, None]

  def step(self, state, theta, eps, today):
    p = self.unpack(theta)  # each [batch]; [batch, 1] broadcasts against eps [..., batch, 1]
    return p["rho_zeta"][:, None] * state + p["sigma_zeta"][:, None] * eps

  def notional_log_rate(self, theta, today):
    """log of the Taylor rule's rate before the ZLB `[...]`, for `theta` `[..., n_params]` and
    `today` `[..., n_policies]` (TF or NumPy)."""
    p = self.unpack(theta)
    gap = p["theta_pi"] * today[..., 1] + p["theta_y"] * (today[..., 0] - math.log(FIXED["Ybar"]))
    return gap + FIXED["log_Pibar"] - math.log(FIXED["beta"])

  def constraint_slack(self, state, theta, policies):
    return self.notional_log_rate(theta, policies)

  def log_rate(self, theta, today):
    """log R `[batch]`: the Taylor rule in logs, floored at 0 (R = 1)."""
    return self.floor(self.notional_log_rate(theta, today))

  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    f = FIXED
    p = self.unpack(theta)
    n, pi = today[:, 0], today[:, 1]                              # [batch]
    n1, pi1 = tomorrow[..., 0], tomorrow[..., 1]                  # [k, batch]
    log_R = self.log_rate(theta, today)
    # Euler in logs: log(beta R / Pibar) + log E[exp(zeta' - zeta - sigma (n' - n) - pi')] = 0.
    zeta_change = (self.step(state, theta, eps, today) - state)[..., 0]  # [k, batch]
    euler = (math.log(f["beta"]) - f["log_Pibar"] + log_R
             + tf.math.log1p(self.expect(tf.math.expm1(
                 zeta_change - f["sigma"] * (n1 - n) - pi1), weights)))
    # NKPC divided by phi: (x - 1) x = (eps - 1)/phi (MC/MC* - 1) + E[(Pi'/R)(x' - 1) x' N'/N],
    # x = Pi/Pibar, MC* = (eps - 1)/eps the flexible-price marginal cost.
    marginal = tf.math.expm1((f["eta"] + f["sigma"]) * n
                             + math.log(f["chi"] * f["eps"] / (f["eps"] - 1)))
    future = self.expect(tf.exp(f["log_Pibar"] - log_R + 2 * pi1 + n1 - n) * tf.math.expm1(pi1),
                         weights)
    nkpc = tf.math.expm1(pi) * tf.exp(pi) - (f["eps"] - 1) / p["phi"] * marginal - future
    return tf.stack([euler, nkpc], axis=1)

  def linearised(self, theta):
    """Slopes `(a, b)` `[batch]` of the log-linear solution without the ZLB: log N = a zeta,
    log(Pi/Pibar) = b zeta (perturbation around the deterministic steady state)."""
    f, p = FIXED, self.unpack(theta)
    rho, beta = p["rho_zeta"], f["beta"]
    kappa = (f["eps"] - 1) * (f["eta"] + f["sigma"]) / p["phi"]
    a = (1 - rho) / (f["sigma"] * (1 - rho) + p["theta_y"]
                     + (p["theta_pi"] - rho) * kappa / (1 - beta * rho))
    return a, kappa * a / (1 - beta * rho)

  def linear(self, theta):
    """The closed-form linearisation as the economy's first-order solution (around zero: the
    steady state's small offsets dropped)."""
    from nk_keras.perturbation import Linear
    a, b = self.linearised(theta)
    p = self.unpack(theta)
    zero = tf.zeros_like(a)[:, None]
    std = self.ergodic_std(theta)
    return Linear(state=zero, policy=tf.concat([zero, zero], axis=1),
                  slopes=tf.stack([a, b], axis=1)[:, :, None],
                  transition=p["rho_zeta"][:, None, None],
                  impact=p["sigma_zeta"][:, None, None], covariance=(std * std)[:, :, None])

  def policy_scale(self, theta):
    a, b = self.linearised(theta)
    return tf.stack([tf.abs(a), tf.abs(b)], axis=1) * self.ergodic_std(theta)

  def relative_size(self, policy, theta, std):
    # The linearised response, not the network's own: a level offset (the ZLB's deflationary
    # bias) can make |policy(std)| small where the response is not.
    return self.policy_scale(theta) / std[:, None]

  def reference(self, theta, progress=False):
    """Time iteration at `theta` `[n, n_params]` (NumPy): a TimeIterationReference whose
    `valid` marks where a stable equilibrium was found. Defaults measured at the calibration
    (BUILD_NOTES / tests/test_time_iteration.py): 1001 grid points on +-5 ergodic std, 80
    trapezoid nodes, change below 1e-11."""
    from nk_keras.reference import time_iteration
    return time_iteration.solve(self, theta, progress=progress, **self.reference_options)

  def training_reference(self, theta, progress=False):
    """Time iteration at 401 points and 40 nodes, 5x cheaper than the accuracy reference: a
    network distilled from it at 4,000 thetas measured 0.15 % mean error against the accuracy
    reference (BUILD_NOTES.md, "rank_zlb"). Stopped at a change below 1e-8: 6e-7 from the
    1e-11 solution at most (96 thetas), against the network's ~3e-5, in 44 % fewer iterations."""
    from nk_keras.reference import time_iteration
    return time_iteration.solve(self, theta, progress=progress, **{
        **self.reference_options, "n_grid": 401, "n_nodes": 40, "tol": 1e-8})

  def outputs(self, state, theta, policies):
    return {"N": tf.exp(policies[:, 0]), "Pi": tf.exp(policies[:, 1] + FIXED["log_Pibar"]),
            "R": tf.exp(self.log_rate(theta, policies))}

  def measure(self, state, theta, policies, previous):
    """KMR's observables (their eq. 43) in annualised percent: output growth 400 (Y / Y_-1 - 1)
    (Y = N), inflation 400 (Pi - 1) and the rate 400 (R - 1), the ZLB applied."""
    n, pi = policies[..., 0], policies[..., 1]
    return {"output_growth": 400 * tf.math.expm1(n - previous[1][..., 0]),
            "inflation": 400 * tf.math.expm1(pi + FIXED["log_Pibar"]),
            "interest_rate": 400 * tf.math.expm1(self.log_rate(theta, policies))}

  def policies_from_outputs(self, outputs):
    return tf.stack([tf.math.log(outputs["N"]),
                     tf.math.log(outputs["Pi"]) - FIXED["log_Pibar"]], axis=1)

  def accuracy_extras(self, policy):
    """At the calibration (KMR's true values): the ergodic ZLB frequency of `policy` against
    the reference's, unit-free Euler errors on the ergodic set for both, and which accuracy
    levels lie in the reference's ZLB region (`zlb_accuracy`)."""
    return zlb_accuracy(self, policy)


def zlb_frequency(reference):
  """Ergodic probability `[n]` that the notional rate is below one (the ZLB binds), for a
  reference of `RankZLB`: exact for its piecewise-linear policy (segment by segment)."""
  economy, theta = reference.economy, reference.theta[:, None, :]
  return reference.probability_below(
      lambda state, values: economy.constraint_slack(state, theta, values))


def euler_errors(economy, policy, state, theta, n_nodes=80, dtype=tf.float32):
  """Unit-free Euler-equation errors log10|1 - C_implied / C| `[m]` (Judd) at `state` `[m, 1]`
  of `policy(state [m, 1], theta [m, P]) -> [m, n_pol]`, called with `dtype` tensors (float32 for a
  network; float64 for `TimeIterationReference.as_policy()`); the expectation by quadrature in
  float64.

  C_implied is the consumption that satisfies the Euler equation exactly given tomorrow's
  policy: exp(zeta) C_implied^-sigma = beta R E[exp(zeta') C'^-sigma / Pi']. The Euler residual
  is r = log(beta R E[exp(zeta' - zeta) (C/C')^sigma / Pi']), so (C_implied / C)^-sigma = exp(r)
  and 1 - C_implied / C = -expm1(-r / sigma).
  """
  from nk_keras.reference import time_iteration
  x, w = time_iteration.trapezoid_normal(n_nodes)
  state = tf.cast(state, tf.float64)
  theta = tf.cast(theta, tf.float64)
  m = tf.shape(state)[0]
  eps = tf.broadcast_to(tf.constant(x)[:, None, None], tf.stack([n_nodes, m, 1]))
  call = lambda s, t: tf.cast(policy(tf.cast(s, dtype), tf.cast(t, dtype)), tf.float64)
  today, tomorrow = economy.policies(call, state, theta, eps)
  r = economy.equilibrium(state, theta, eps, today, tomorrow, tf.constant(w))[:, 0]
  return (tf.math.log(tf.abs(tf.math.expm1(-r / FIXED["sigma"]))) / math.log(10.0)).numpy()


# Accuracy extras (the evaluate app's ZLB and Euler-error statistics at one theta).

EULER_DRAWS = 10_000   # ergodic draws of zeta for the Euler errors
EULER_FLOOR = -17.0    # log10 of an exactly zero Euler error (below float64's resolution)


def policy_zlb_frequency(economy, policy, theta, n_points=6001, span=6.0):
  """Ergodic probability that the notional rate of `policy` (a network: float32 calls) is
  negative at one `theta` `[n_params]`: its notional rate on `n_points` of zeta on +-`span`
  ergodic std, linear in between (`probability_negative`)."""
  theta = np.asarray(theta, np.float64)
  z = np.linspace(-span, span, n_points)
  std = float(economy.ergodic_std(tf.constant(theta[None]))[0, 0])
  values = np.asarray(policy(tf.constant(z[:, None] * std, tf.float32),
                             tf.constant(np.repeat(theta[None], n_points, 0), tf.float32)),
                      np.float64)
  from nk_keras.reference.time_iteration import probability_negative
  return float(probability_negative(z, economy.notional_log_rate(theta[None], values)))


def zlb_accuracy(economy, policy, theta=None, reference=None, draws=EULER_DRAWS, seed=0):
  """The ZLB and Euler-error statistics of `policy` at `theta` (default: the calibration)
  against `reference` (default: `economy.reference` solved there), JSON-ready:
  {"zlb": {"theta", "frequency_nn", "frequency_reference", "difference_pp",
  "binds_by_level": {level: bool}}, "euler_errors_log10": {"network"/"reference": {"mean",
  "max", "draws"}}}. Euler errors (`euler_errors`) on `draws` ergodic draws of zeta, the same
  for both; an exactly zero error counts as 1e-17."""
  theta = np.asarray(economy.calibration if theta is None else theta, np.float64)
  reference = reference if reference is not None else economy.reference(theta[None])
  if not reference.valid[0]:
    return {"zlb": None, "euler_errors_log10": None,
            "note": "the reference finds no stable equilibrium at this theta"}
  std = float(reference.std[0])
  frequency_ref = float(zlb_frequency(reference)[0])
  frequency_nn = policy_zlb_frequency(economy, policy, theta)
  levels = np.asarray(economy.accuracy_levels, np.float64)
  notional = economy.notional_log_rate(
      theta[None], reference.policies(levels[None, :, None] * std)[0])
  state = np.random.default_rng(seed).standard_normal(draws)[:, None] * std       # [draws, 1]
  thetas = np.repeat(theta[None], draws, 0)

  def stats(errors):
    errors = np.maximum(errors, EULER_FLOOR)
    return {"mean": float(errors.mean()), "max": float(errors.max()), "draws": int(draws)}

  return {"zlb": {"theta": dict(zip(economy.param_names, theta.tolist())),
                  "frequency_nn": frequency_nn, "frequency_reference": frequency_ref,
                  "difference_pp": 100 * (frequency_nn - frequency_ref),
                  "binds_by_level": {f"{k:+g}": bool(n < 0) for k, n in zip(levels, notional)}},
          "euler_errors_log10": {
              "network": stats(euler_errors(economy, policy, state, thetas)),
              "reference": stats(euler_errors(economy, reference.as_policy(), state, thetas,
                                              dtype=tf.float64))}}
