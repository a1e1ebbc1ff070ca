"""Reference solutions: what accuracy is measured against (a closed form, or time iteration).

A `Reference` holds the solution at `n` parameter vectors `theta` `[n, n_params]` (NumPy
float64) and answers in the economy's policy units:
  `policies(state [n, m, n_state]) -> [n, m, n_policies]`   the reference policy at any states,
  `scale() -> [n, n_policies]`                     the denominator of the accuracy metric,
  `valid` `[n]` bool                               whether a solution exists at each theta.
"""

import numpy as np
import tensorflow as tf

from nk_keras import simulation


class Reference:
  """Base: subclasses set `economy`, `theta`, `valid` and implement `policies` and `scale`."""

  def policies(self, state):
    raise NotImplementedError

  def scale(self):
    raise NotImplementedError


class ClosedFormReference(Reference):
  """An economy's closed form as a reference; the metric's scale is |policy| at one ergodic std
  (for a policy linear in the state: its response to the state, in ergodic units)."""

  def __init__(self, economy, theta):
    self.economy = economy
    self.theta = np.asarray(theta, np.float64)
    self.valid = np.ones(self.theta.shape[0], bool)

  def policies(self, state):
    state = np.asarray(state, np.float64)
    n, m, k = state.shape
    theta = np.repeat(self.theta, m, axis=0)                                # [n*m, P]
    out = self.economy.closed_form(tf.constant(state.reshape(-1, k)), tf.constant(theta))
    return out.numpy().reshape(n, m, -1)

  def as_policy(self):
    """`policy(state [m, n_state], theta [m, P]) -> [m, n_pol]`: the closed form, at any theta."""
    return self.economy.closed_form

  def ergodic_sample(self, chains, seed=0):
    """States `[n, chains, n_state]` from each theta's ergodic distribution under the closed
    form (the metric's states where there are several)."""
    return simulation.ergodic_states(self.economy, self.as_policy(), self.theta, chains, seed)

  def scale(self):
    """|policy| `[n, n_pol]` with every state at one ergodic std (the metric is one-state)."""
    std = self.economy.ergodic_std(tf.constant(self.theta)).numpy()         # [n, n_state]
    return np.abs(self.policies(std[:, None])[:, 0])
