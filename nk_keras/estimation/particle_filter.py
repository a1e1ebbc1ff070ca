"""Bootstrap particle filter driven by a policy, vectorised over particles and parameter vectors.

One compiled call evaluates the log-likelihood of `n_theta` parameter vectors with
`n_particles` particles each: particles live in a `[n_theta, n_particles, n_state]` grid (flat
`[n_theta * n_particles, n_state]` where the economy and the policy see them) and the policy
is called once per period on all `n_theta * n_particles` points. It needs only the economy's
state step, ergodic std and measurement (`Economy.observe`; each particle carries its last
policies where the measurement needs them, e.g. output growth) and a policy (network, export,
closed form, or a `reference.solved_policy.TabulatedPolicy`: time iteration's solution or a
network read from tables), so it works for economies without a linear solution.

Common random numbers: the standard-normal draws (start, innovations) and the systematic-
resampling uniform depend on `(seed, period, particle)` only, never on a theta's position in
the batch. So a theta's log-likelihood does not depend on which other thetas share the call
(vectorised and one-at-a-time evaluations agree to round-off), and for a fixed seed the
estimate moves smoothly with theta between resampling switches, which helps a surrogate fit.

Why not `tfp.experimental.mcmc.particle_filter`: see BUILD_NOTES.md ("Estimation").
"""

import math

import numpy as np
import tensorflow as tf
from tqdm import tqdm


CHUNK = 1000   # thetas per compiled call: 1000 x 100 particles = 1e5 policy points per period
# Particles per compiled call where the policy is called at every particle (no table, as with
# several states): rank_zlb_inertia's served graph at 1,000 thetas x 100 particles took the
# process past 19 GB; at 100 x 100 it peaks at 1.1 GB and filters as many thetas per second.
ROWS = 10_000


def systematic_resample(log_weights, u):
  """Ancestor indices `[n_theta, N]` from `log_weights` `[n_theta, N]` and one uniform `u` in
  [0, 1) shared by all rows: particle k is drawn where the cumulative weight passes (u + k) / N."""
  N = tf.shape(log_weights)[1]
  weights = tf.nn.softmax(log_weights, axis=1)
  cdf = tf.math.cumsum(weights, axis=1)
  points = (u + tf.cast(tf.range(N), log_weights.dtype)) / tf.cast(N, log_weights.dtype)
  points = tf.broadcast_to(points[None], tf.shape(weights))
  idx = tf.searchsorted(cdf, points, side="right")
  return tf.minimum(idx, N - 1)   # cdf[-1] can fall short of 1 by round-off


def log_likelihood_fn(economy, policy, observations, n_particles):
  """A compiled `(theta [n_theta, P] float32, seed [2] int32) -> log-likelihood [n_theta]`.

  `policy(state [m, n_state], theta [m, P]) -> [m, n_policies]`. Measurement error is Gaussian with
  the variances of `observations.me_var`.
  """
  y = tf.constant(observations.y, tf.float32)                             # [T, n_obs]
  me_var = tf.constant(observations.me_var, tf.float32)                   # [n_obs]
  T, N = observations.periods, int(n_particles)
  S = economy.n_state
  names = observations.names
  log_norm = -0.5 * tf.reduce_sum(tf.math.log(2 * math.pi * me_var))
  log_N = math.log(N)

  @tf.function(reduce_retracing=True)
  def fn(theta, seed):
    theta = tf.convert_to_tensor(theta, tf.float32)
    n = tf.shape(theta)[0]
    theta_p = tf.repeat(theta, N, axis=0)                                 # [n*N, P] theta-major
    tile = lambda draws: tf.tile(draws, [n, 1])                           # [N, k] -> [n*N, k]
    eps0 = tf.random.stateless_normal([N, S],
                                      seed=tf.random.experimental.stateless_fold_in(seed, 0))
    # Economy.draw_state's ergodic draw, with the normals shared across thetas.
    state = economy.ergodic_state(theta_p, tile(eps0))                    # [n*N, S]
    previous = tf.zeros([n * N, len(economy.policy_names)])               # [n*N, n_pol]
    previous_state = state
    if economy.observes_previous:
      # A growth rate needs last period's state and policies: the particles start a period
      # before the first observation (still ergodic), with a stream of their own.
      previous = policy(state, theta_p)
      eps = tf.random.stateless_normal(
          [N, economy.n_shock], seed=tf.random.experimental.stateless_fold_in(seed, T + 1))
      state = economy.step(state, theta_p, tile(eps), previous)
    resample = lambda x, ancestors: tf.reshape(                           # [n*N, k] by ancestor
        tf.gather(tf.reshape(x, [n, N, -1]), ancestors, batch_dims=1), tf.shape(x))
    loglik = tf.zeros([n], tf.float32)
    for t in tf.range(T):
      seeds = tf.random.experimental.stateless_split(
          tf.random.experimental.stateless_fold_in(seed, t + 1), 2)
      policies = policy(state, theta_p)                                   # [n*N, n_pol]
      predicted = economy.observe(names, state, theta_p, policies,
                                  (previous_state, previous))            # [n*N, n_obs]
      log_w = log_norm - 0.5 * tf.reduce_sum((y[t] - predicted) ** 2 / me_var, axis=1)
      log_w = tf.reshape(log_w, [n, N])                                   # [n, N]
      loglik += tf.reduce_logsumexp(log_w, axis=1) - log_N
      u = tf.random.stateless_uniform([], seed=seeds[0])
      ancestors = systematic_resample(log_w, u)                           # [n, N]
      previous_state = state = resample(state, ancestors)
      previous = resample(policies, ancestors)
      eps = tf.random.stateless_normal([N, economy.n_shock], seed=seeds[1])
      state = economy.step(state, theta_p, tile(eps), previous)
    return loglik
  return fn


class ParticleFilter:
  """`pf(theta [n_theta, P], seed=0) -> log-likelihood [n_theta]` (NumPy float64), evaluated in
  chunks of `chunk` thetas through one compiled function, all with the same random numbers
  (default: CHUNK thetas for a tabulated policy, else ROWS particles).

  A policy read from tables (`reference.solved_policy.TabulatedPolicy`) has
  `tabulate(theta [n, P]) -> valid [n]`: it is called on each chunk first, and where it finds no
  equilibrium the log-likelihood is -inf (data cannot come from a model without one)."""

  def __init__(self, economy, policy, observations, n_particles=100, chunk=None):
    self.economy, self.n_particles = economy, int(n_particles)
    self.tabulate = getattr(policy, "tabulate", None)
    self.chunk = int(chunk or (CHUNK if self.tabulate else max(1, ROWS // self.n_particles)))
    self.fn = log_likelihood_fn(economy, policy, observations, n_particles)

  def __call__(self, theta, seed=0, progress=False, desc="particle filter"):
    theta = np.asarray(theta, np.float32).reshape(-1, self.economy.n_params)
    seed = tf.constant([seed, 12345], tf.int32)
    out = []
    with tqdm(total=theta.shape[0], desc=desc, unit="theta", disable=not progress,
              mininterval=2.0) as bar:
      for i in range(0, theta.shape[0], self.chunk):
        part = theta[i:i + self.chunk]
        valid = self.tabulate(part.astype(np.float64)) if self.tabulate else True
        out.append(np.where(valid, self.fn(tf.constant(part), seed).numpy(), -np.inf))
        bar.update(len(part))
    return np.concatenate(out).astype(np.float64)


def log_likelihood(economy, policy, observations, theta, n_particles=100, seed=0, **kwargs):
  """One-off `ParticleFilter(...)(theta, seed)`; build a `ParticleFilter` to call it often."""
  return ParticleFilter(economy, policy, observations, n_particles)(theta, seed, **kwargs)


def bias_and_spread(economy, policy, observations, theta, exact, particles=(10, 100, 1000),
                    replications=20, progress=False):
  """Monte Carlo error of the PF at one `theta` `[P]` against the `exact` log-likelihood: for
  each particle count, mean and std of (PF - exact) over `replications` seeds. Returns a list
  of dicts (particles, bias, std, rmse, seconds per evaluation)."""
  import time
  rows = []
  for N in particles:
    pf = ParticleFilter(economy, policy, observations, N)
    pf(theta, seed=0)   # compile outside the timing
    start = time.perf_counter()
    errors = np.array([pf(theta, seed=s)[0] - exact for s in
                       tqdm(range(replications), desc=f"PF {N} particles", disable=not progress)])
    rows.append({"particles": N, "bias": float(errors.mean()), "std": float(errors.std(ddof=1)),
                 "rmse": float(np.sqrt((errors ** 2).mean())),
                 "bias_stderr": float(errors.std(ddof=1) / np.sqrt(replications)),
                 "seconds": (time.perf_counter() - start) / replications})
  return rows


def closed_form_policy(economy):
  """The exact solution as a policy (for checks of the filter itself)."""
  def policy(state, theta):
    return economy.closed_form(state, theta)
  return policy
