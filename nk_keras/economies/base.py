"""The interface every economy implements, so regimes, apps and exports never see the economics.

An economy has one exogenous state (a scalar per point, shape `[batch]`), a vector of structural
parameters `theta` (shape `[batch, n_params]`, columns in `param_names` order) and a vector of
policies (shape `[batch, n_policies]`, columns in `policy_names` order).
"""

import abc

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class Economy(abc.ABC):
  """Parameters, priors, state law of motion and equilibrium residuals of one model."""

  name: str
  param_names: tuple
  state_name: str
  policy_names: tuple
  residual_names: tuple   # one equilibrium condition per policy
  box_low: np.ndarray    # [n_params]
  box_high: np.ndarray   # [n_params]
  calibration: np.ndarray  # [n_params]
  # Sign of each policy's response to the state where it is known to hold over the whole box
  # (an economic property, e.g. a demand shock raises output); None where it is not. It lets the
  # network learn the log of that response ("ergodic_logslope").
  response_signs = None

  def __init__(self, prior=None):
    """`prior`: a `tfd.Distribution` with event shape `[n_params]`; uniform on the box if None."""
    self.prior = prior if prior is not None else self.uniform_prior()

  @property
  def n_params(self):
    return len(self.param_names)

  def uniform_prior(self):
    return tfd.Independent(
        tfd.Uniform(low=tf.constant(self.box_low, tf.float32),
                    high=tf.constant(self.box_high, tf.float32)),
        reinterpreted_batch_ndims=1)

  def unpack(self, theta):
    """`theta` `[..., n_params]` -> dict of name -> `[...]`."""
    return {name: theta[..., i] for i, name in enumerate(self.param_names)}

  def theta_from(self, values):
    """Calibration with some entries replaced: dict name -> float, returns float32 `[n_params]`."""
    unknown = set(values) - set(self.param_names)
    if unknown:
      raise ValueError(f"unknown parameter(s) {sorted(unknown)}; "
                       f"known: {', '.join(self.param_names)}")
    theta = self.calibration.astype(np.float32).copy()
    for name, value in values.items():
      theta[self.param_names.index(name)] = value
    return theta

  def outside_box(self, theta):
    """Names of the parameters of `theta` `[..., n_params]` (NumPy) outside the box or non-finite."""
    theta = np.asarray(theta, np.float64).reshape(-1, self.n_params)
    bad = ~np.isfinite(theta) | (theta < self.box_low - 1e-6) | (theta > self.box_high + 1e-6)
    return [name for i, name in enumerate(self.param_names) if bad[:, i].any()]

  def draw_theta(self, n, seed):
    """`n` parameter vectors from the prior, `[n, n_params]`; `seed` is a stateless `[2]` seed."""
    return self.prior.sample(n, seed=seed)

  def draw_state(self, theta, seed):
    """Ergodic draws of the state for each row of `theta`: `[batch]`."""
    eps = tf.random.stateless_normal(tf.shape(theta)[:1], seed=seed)
    return self.ergodic_std(theta) * eps

  def draw_shocks(self, mc, batch, seed):
    """Antithetic standard-normal innovations `[mc, batch]`: rows k and k + mc/2 are negatives."""
    half = tfd.Normal(0.0, 1.0).sample([mc // 2, batch], seed=seed)
    return tf.concat([half, -half], axis=0)

  @abc.abstractmethod
  def ergodic_std(self, theta):
    """Ergodic standard deviation of the state, `[batch]`: the state's natural scale."""

  @abc.abstractmethod
  def step(self, state, theta, eps):
    """Next period's state. `state` `[batch]`, `theta` `[batch, n_params]`, `eps` `[..., batch]`
    -> `[..., batch]` (one next state per innovation)."""

  @abc.abstractmethod
  def equilibrium(self, state, theta, today, tomorrow):
    """Equilibrium-condition residuals `[batch, n_residuals]` (one per policy), in state units.

    Pure arithmetic: `today` `[batch, n_policies]` are the policies at `state`, `tomorrow`
    `[mc, batch, n_policies]` those at `step(state, theta, eps)`; expectations are means over
    the `mc` axis.
    """

  def policies(self, policy, state, theta, eps):
    """Policies today `[batch, n_pol]` and tomorrow `[mc, batch, n_pol]` from one network call.

    `policy(state [n], theta [n, n_params]) -> [n, n_policies]`; `eps` is `[mc, batch]`.
    """
    mc, batch = tf.shape(eps)[0], tf.shape(eps)[1]
    state_next = self.step(state, theta, eps)                                 # [mc, batch]
    points = tf.concat([state, tf.reshape(state_next, [-1])], axis=0)         # [(1+mc)*batch]
    thetas = tf.tile(theta, tf.stack([1 + mc, 1]))                            # rows follow points
    out = policy(points, thetas)                                              # [(1+mc)*batch, n_pol]
    tomorrow = tf.reshape(out[batch:], tf.stack([mc, batch, tf.shape(out)[1]]))
    return out[:batch], tomorrow

  def residuals(self, policy, state, theta, eps):
    """`equilibrium` residuals `[batch, n_residuals]` of `policy` at (`state`, `theta`)."""
    today, tomorrow = self.policies(policy, state, theta, eps)
    return self.equilibrium(state, theta, today, tomorrow)

  def closed_form(self, state, theta):
    """Exact policies `[batch, n_policies]`, or None where the economy has no closed form."""
    return None

  def state_space(self, theta):
    """Linear-Gaussian state-space form of the solution, for an exact (Kalman) likelihood.

    Returns a dict of tensors for `theta` `[n, n_params]`: `transition` `[n, 1, 1]`,
    `innovation_std` `[n, 1]`, `loadings` `[n, n_policies, 1]` (policies = loadings @ state)
    and `initial_std` `[n, 1]` (the ergodic std). Economies without a linear closed form (a
    zero lower bound, say) raise NotImplementedError; particle filter, surrogate and MCMC
    do not need it.
    """
    raise NotImplementedError(f"economy {self.name!r} has no linear state-space form")
