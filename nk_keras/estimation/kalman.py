"""Exact log-likelihood of linear-Gaussian data: the Kalman filter (TFP's state-space model).

The economy supplies the state-space form of its solution (`economy.state_space(theta)`); the
observables add independent Gaussian measurement error of known variance. TFP's
`LinearGaussianStateSpaceModel` carries a batch of parameter vectors at once, so one call gives
the log-likelihood of every row of `theta` `[n_theta, n_params]`.

Timing (the one the data simulator uses): `state_0` ~ ergodic distribution,
`y_t = loadings @ state_t + e_t`, `state_{t+1} = transition @ state_t + innovation`.
Computed in float64: a log-likelihood of order 10^3 needs more than float32's 7 digits when
MCMC compares neighbouring thetas.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
DTYPE = tf.float64


def observation_matrix(economy, names, space):
  """`[n, n_obs, n_state]` rows of the observables: policy loadings or the state itself."""
  loadings = space["loadings"]                                          # [n, n_pol, n_state]
  ones = tf.ones_like(loadings[:, :1, :])                               # [n, 1, n_state]

  def row(name):
    if name in economy.state_names:   # the state itself: a unit row
      return ones * tf.one_hot(economy.state_names.index(name), economy.n_state,
                               dtype=loadings.dtype)
    return loadings[:, economy.policy_names.index(name)][:, None]
  return tf.concat([row(n) for n in names], axis=1)


def state_space_model(economy, observations, theta):
  """TFP `LinearGaussianStateSpaceModel` with batch shape `[n_theta]` for `theta` `[n_theta, P]`."""
  theta = tf.convert_to_tensor(theta, DTYPE)
  space = economy.state_space(theta)
  H = observation_matrix(economy, observations.names, space)            # [n, n_obs, n_state]
  n_state = space["transition"].shape[-1]
  zeros = tf.zeros_like(space["innovation_std"])                        # [n, n_state]
  me_std = tf.constant(np.sqrt(observations.me_var), DTYPE)             # [n_obs]
  return tfd.LinearGaussianStateSpaceModel(
      num_timesteps=observations.periods,
      transition_matrix=tf.linalg.LinearOperatorFullMatrix(space["transition"]),
      transition_noise=tfd.MultivariateNormalDiag(zeros, space["innovation_std"]),
      observation_matrix=tf.linalg.LinearOperatorFullMatrix(H),
      observation_noise=tfd.MultivariateNormalDiag(tf.zeros_like(me_std), me_std),
      initial_state_prior=tfd.MultivariateNormalDiag(zeros, space["initial_std"]),
      validate_args=False, name=f"{economy.name}_{n_state}d_state_space")


def log_likelihood(economy, observations, theta):
  """Exact log-likelihood `[n_theta]` (float64) of `observations` for each row of `theta`."""
  y = tf.constant(observations.y, DTYPE)                                # [T, n_obs]
  return state_space_model(economy, observations, theta).log_prob(y)


def log_likelihood_fn(economy, observations):
  """A compiled `theta [n, P] (float64) -> [n]`, for MCMC and slices."""
  y = tf.constant(observations.y, DTYPE)

  @tf.function   # no shape relaxation: TFP's filter loop needs a static batch size
  def fn(theta):
    return state_space_model(economy, observations, theta).log_prob(y)
  return fn


def joint_gaussian_log_likelihood(economy, observations, theta):
  """The same likelihood as one multivariate normal over the whole sample, `[T * n_obs]`, with
  the covariance written out from the state's autocovariances. O((T n_obs)^3): a check for
  short samples, independent of any filtering recursion. `theta` `[n_params]`; NumPy float64."""
  space = {k: np.asarray(v, np.float64)[0] for k, v in
           economy.state_space(tf.constant(np.asarray(theta, np.float64)[None])).items()}
  if space["transition"].shape != (1, 1):
    raise NotImplementedError("written for a scalar state")
  rho = space["transition"][0, 0]
  var0 = space["initial_std"][0] ** 2
  T, names = observations.periods, observations.names
  lags = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
  state_cov = var0 * rho ** lags                                        # [T, T] stationary AR(1)
  H = np.asarray(observation_matrix(
      economy, names, {k: tf.constant(v[None]) for k, v in space.items()}))[0, :, 0]   # [n_obs]
  cov = np.kron(state_cov, np.outer(H, H)) + np.kron(np.eye(T), np.diag(observations.me_var))
  y = observations.y.reshape(-1)                                        # period-major
  sign, logdet = np.linalg.slogdet(cov)
  quad = y @ np.linalg.solve(cov, y)
  return -0.5 * (y.size * np.log(2 * np.pi) + logdet + quad)

