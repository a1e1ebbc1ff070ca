"""Posterior sampling with TFP MCMC on any log-likelihood of the estimated parameters.

`log_likelihood(theta_est [n_chains, k] float64) -> [n_chains]` may be the surrogate or the
exact Kalman likelihood: the same sampler, settings and seeds run on both, so their posteriors
differ only by the likelihood. The prior is the economy's TFP prior evaluated at the full theta
with the fixed parameters inserted: for independent priors (the box's uniforms) that is the
marginal prior of the estimated ones up to a constant.

Samplers:
- `rwmh` (KMR's): random-walk Metropolis with a Gaussian proposal whose covariance is adapted in
  pilot runs (2.38^2 / k times the pooled pilot covariance, the classic optimal scaling for a
  Gaussian target), then frozen for burn-in and sampling (so the chain is a proper Markov chain).
- `hmc`, `nuts`: gradient samplers on the unconstrained space (a sigmoid bijector onto the box),
  step size tuned by dual averaging during burn-in.
Chains start from the best of a set of Sobol points of the box (distinct points, so R-hat can
see chains that have not mixed).
"""

import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tqdm import tqdm

from nk_keras.errors import UserError

tfd, tfb = tfp.distributions, tfp.bijectors
SAMPLERS = ("rwmh", "hmc", "nuts")


class Target:
  """Log posterior of the estimated parameters `theta_est [n, k]` (float64)."""

  def __init__(self, economy, log_likelihood, names, fixed):
    self.economy, self.log_likelihood, self.names = economy, log_likelihood, tuple(names)
    self.idx = [economy.param_names.index(n) for n in names]
    self.fixed = tf.constant(np.asarray(fixed, np.float64))
    self.low = tf.constant(economy.box_low[self.idx], tf.float64)
    self.high = tf.constant(economy.box_high[self.idx], tf.float64)
    # scatter matrix: theta_full = fixed * (1 - mask) + theta_est @ S
    S = np.zeros((len(self.idx), economy.n_params))
    S[np.arange(len(self.idx)), self.idx] = 1.0
    self.S = tf.constant(S)
    self.mask = tf.constant(S.sum(axis=0))

  def full(self, theta_est):
    return self.fixed * (1 - self.mask) + tf.matmul(theta_est, self.S)

  def log_prior(self, theta_est):
    """The economy's prior at the full theta; -inf outside the domain where an equilibrium
    exists (`Economy.in_domain`: the policy, the likelihood draws and the surrogate are not
    defined there)."""
    full = tf.cast(self.full(theta_est), self.economy.prior.dtype)
    lp = tf.cast(self.economy.prior.log_prob(full), tf.float64)
    return tf.where(self.economy.in_domain(full), lp, tf.constant(-np.inf, tf.float64))

  def __call__(self, theta_est):
    theta_est = tf.convert_to_tensor(theta_est, tf.float64)
    lp = self.log_prior(theta_est)
    inside = tf.math.is_finite(lp)
    # Outside the prior's support the likelihood is never evaluated at its value (the policy and
    # the surrogate were not trained there): -inf, whatever it would return.
    safe = tf.where(inside[:, None], theta_est, (self.low + self.high)[None] / 2)
    ll = tf.cast(self.log_likelihood(safe), tf.float64)
    return tf.where(inside, lp + ll, tf.constant(-np.inf, tf.float64))


def starting_points(target, n_chains, n_candidates=2048):
  """The `n_chains` best of `n_candidates` Sobol points of the box `[n_chains, k]`."""
  k = len(target.names)
  unit = tf.math.sobol_sample(k, n_candidates, skip=1, dtype=tf.float64)
  cand = target.low + unit * (target.high - target.low)
  values = np.concatenate([target(cand[i:i + 512]).numpy() for i in range(0, n_candidates, 512)])
  best = np.argsort(-values)[:n_chains]
  return tf.gather(cand, best)


def _rwmh_kernel(target, chol):
  def new_state(state_parts, seed):
    (x,) = state_parts
    z = tf.random.stateless_normal(tf.shape(x), seed=seed, dtype=x.dtype)
    return [x + tf.linalg.matvec(chol, z)]
  return tfp.mcmc.RandomWalkMetropolis(target, new_state_fn=new_state)


def _rwmh_runner(target):
  """One compiled `(state [chains, k], chol [k, k], seed, n_steps) -> (draws, accepted, chol)`:
  traced once per distinct `n_steps`, whatever the proposal."""
  @tf.function
  def go(state, chol, seed, n_steps):
    draws, accepted = tfp.mcmc.sample_chain(
        num_results=n_steps, current_state=state, kernel=_rwmh_kernel(target, chol), seed=seed,
        trace_fn=lambda _, r: _accepted(r))
    return draws, accepted, chol
  return go


def _gradient_runner(kernel):
  """Like `_rwmh_runner`, carrying the kernel's results (the step-size adaptation) from call to
  call instead of a proposal."""
  @tf.function
  def go(state, results, seed, n_steps):
    draws, accepted, results = tfp.mcmc.sample_chain(
        num_results=n_steps, current_state=state, kernel=kernel, seed=seed,
        previous_kernel_results=results, return_final_kernel_results=True,
        trace_fn=lambda _, r: _accepted(r))
    return draws, accepted, results
  return go


def _accepted(results):
  while not hasattr(results, "is_accepted"):
    results = results.inner_results
  return results.is_accepted


def _advance(go, state, carry, seed, n_steps, bar, parts=10):
  """`n_steps` of `go` in about `parts` compiled calls, so the progress bar moves between them.
  Returns draws `[n_steps, chains, k]`, acceptances `[n_steps, chains]` and the final carry."""
  size = max(1, -(-n_steps // parts))
  sizes = [min(size, n_steps - i) for i in range(0, n_steps, size)]
  draws, accepted = [], []
  for n, chunk_seed in zip(sizes, tfp.random.split_seed(seed, len(sizes))):
    d, a, carry = go(state, carry, chunk_seed, n)
    state = d[-1]
    draws.append(d)
    accepted.append(a)
    bar.update(n)
    bar.set_postfix(acceptance=f"{float(tf.reduce_mean(tf.cast(a, tf.float32))):.2f}")
  return tf.concat(draws, 0), tf.concat(accepted, 0), carry


def sample(target, n_chains=8, n_samples=10000, n_burnin=5000, sampler="rwmh", seed=0,
           pilot_rounds=4, pilot_steps=2000, init=None, progress=False, desc="MCMC"):
  """Runs the chains, with a progress bar if `progress`. Returns a dict: `samples`
  `[n_samples, n_chains, k]` (NumPy), `accept`, `seconds`, the settings used, and for rwmh the
  pilot acceptances and the proposal covariance."""
  if sampler not in SAMPLERS:
    raise UserError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
  start = time.perf_counter()
  seeds = tfp.random.split_seed(tf.constant([seed, 2024], tf.int32), pilot_rounds + 2)
  k = len(target.names)
  state = starting_points(target, n_chains) if init is None else tf.constant(init, tf.float64)
  info = {"sampler": sampler, "chains": n_chains, "samples_per_chain": n_samples,
          "burnin": n_burnin}
  pilot = pilot_rounds * pilot_steps if sampler == "rwmh" else 0
  bar = tqdm(total=pilot + n_burnin + n_samples, desc=desc, unit="step", disable=not progress,
             mininterval=1.0)
  with bar:
    if sampler == "rwmh":
      width = target.high - target.low
      cov = tf.linalg.diag((0.01 * width) ** 2)
      go = _rwmh_runner(target)
      info["pilot_accept"] = []
      for r in range(pilot_rounds):
        draws, acc, _ = _advance(go, state, tf.linalg.cholesky(cov), seeds[r], pilot_steps, bar)
        state = draws[-1]
        pooled = tf.reshape(draws[pilot_steps // 2:], [-1, k])
        centred = pooled - tf.reduce_mean(pooled, axis=0)
        sample_cov = tf.matmul(centred, centred, transpose_a=True) / tf.cast(
            tf.shape(pooled)[0] - 1, tf.float64)
        cov = 2.38 ** 2 / k * sample_cov + tf.linalg.diag((1e-6 * width) ** 2)
        info["pilot_accept"].append(float(tf.reduce_mean(tf.cast(acc, tf.float32))))
      carry = tf.linalg.cholesky(cov)
      info["proposal_cov"] = cov.numpy().tolist()
      info["pilot_rounds"], info["pilot_steps"] = pilot_rounds, pilot_steps
    else:
      bijector = tfb.Sigmoid(low=target.low, high=target.high)
      if sampler == "hmc":
        inner = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=0.05, num_leapfrog_steps=10)
      else:
        inner = tfp.mcmc.NoUTurnSampler(target, step_size=0.05, max_tree_depth=8)
      kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
          tfp.mcmc.TransformedTransitionKernel(inner, bijector),
          num_adaptation_steps=int(0.8 * n_burnin), target_accept_prob=0.75)
      # Move the Sobol starts slightly inside the box: the sigmoid's inverse is infinite on it.
      width = target.high - target.low
      state = tf.clip_by_value(state, target.low + 1e-4 * width, target.high - 1e-4 * width)
      go = _gradient_runner(kernel)
      carry = kernel.bootstrap_results(state)
    if n_burnin:
      draws, _, carry = _advance(go, state, carry, seeds[-2], n_burnin, bar)
      state = draws[-1]
    draws, acc, _ = _advance(go, state, carry, seeds[-1], n_samples, bar)
  info["accept"] = float(tf.reduce_mean(tf.cast(acc, tf.float32)))
  info["seconds"] = time.perf_counter() - start
  info["samples"] = draws.numpy()
  return info


def summary(names, samples):
  """Per parameter: mean, std, 5 % and 95 % quantiles (pooled over chains), R-hat (split
  chains) and effective sample size (summed over chains), from `samples` `[n, chains, k]`."""
  x = tf.constant(samples)
  rhat = tfp.mcmc.potential_scale_reduction(x, independent_chain_ndims=1, split_chains=True)
  ess = tf.reduce_sum(tfp.mcmc.effective_sample_size(x), axis=0)   # per-chain ESS, summed
  pooled = samples.reshape(-1, samples.shape[-1])
  out = {}
  for i, n in enumerate(names):
    out[n] = {"mean": float(pooled[:, i].mean()), "std": float(pooled[:, i].std(ddof=1)),
              "q05": float(np.quantile(pooled[:, i], 0.05)),
              "q95": float(np.quantile(pooled[:, i], 0.95)),
              "rhat": float(rhat[i]), "ess": float(ess[i])}
  return out
