"""Time iteration (nk_keras/reference/time_iteration.py): the float64 reference solver.

Checked on a known truth (the NK closed form), by refinement, against the facts docs/models.md
section 8 states for rank_zlb (ZLB frequency, ergodic std, linearised slopes at small shocks,
where no equilibrium exists) and by its own residuals.
"""

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import economies
from nk_keras.economies import rank_zlb
from nk_keras.reference import time_iteration as ti

ZLB = economies.get("rank_zlb")
Z = np.linspace(-2.5, 2.5, 11)   # the accuracy metric's states, in ergodic std


@pytest.fixture(scope="module")
def true_theta():
  return ti.solve(ZLB, ZLB.calibration[None])


def test_reproduces_the_nk_closed_form_from_zeros():
  nk = economies.get("nk")
  theta = np.stack([nk.calibration, nk.box_low, nk.box_high])
  # Linear policies are interpolated exactly and Gauss-Hermite is exact for them: what is left
  # is the iteration's own error (measured 8.6e-12 relative).
  ref = ti.solve(nk, theta, n_grid=41, n_nodes=10, quadrature="hermite", init="zeros", tol=1e-13)
  assert ref.valid.all() and (ref.iterations > 20).all()
  state = (ref.std[:, None] * Z[None])[..., None]                        # [3, len(Z), 1]
  exact = nk.closed_form(tf.constant(state.reshape(-1, 1)),
                         tf.constant(np.repeat(theta, len(Z), 0)))
  exact = exact.numpy().reshape(3, len(Z), 2)
  assert np.abs(ref.policies(state) - exact).max() < 1e-8 * np.abs(exact).max()


def test_refinement_of_grid_and_nodes(true_theta):
  fine = ti.solve(ZLB, ZLB.calibration[None], n_grid=801, n_nodes=80)
  diff = np.abs(true_theta.policies_z(Z[None]) - fine.policies_z(Z[None])).max(axis=(0, 1))
  # Measured 6.8e-6 (log N) and 4.3e-7 (log Pi/Pibar): 0.05 % of their ergodic std.
  assert diff[0] < 2e-5 and diff[1] < 1.5e-6, diff


def test_facts_at_the_true_theta(true_theta):
  assert true_theta.valid.all()
  # Measured: ZLB 9.42 %, std log N 1.440 %, annualised inflation 0.381 pp (docs/models.md: ~9 %,
  # ~1.4 %, ~0.4 pp).
  assert 0.07 < rank_zlb.zlb_frequency(true_theta)[0] < 0.11
  std = true_theta.scale()[0]
  assert 0.013 < std[0] < 0.015 and 0.35 < 400 * std[1] < 0.45
  # The ZLB's deflationary bias: both policies are below the steady state on average.
  assert (true_theta.ergodic_mean()[0] < 0).all()


def test_small_shocks_give_the_linearised_slopes():
  theta = np.stack([ZLB.theta_from(dict(sigma_zeta=0.01)),
                    ZLB.theta_from(dict(sigma_zeta=0.001, theta_pi=1.5, theta_y=0.05, phi=700,
                                        rho_zeta=0.9))]).astype(np.float64)
  ref = ti.solve(ZLB, theta)
  h = 0.25
  slope = (ref.policies_z(np.full((2, 1), h)) - ref.policies_z(np.full((2, 1), -h)))[:, 0]
  slope /= 2 * h * ref.std[:, None]
  linear = np.stack([s.numpy() for s in ZLB.linearised(tf.constant(theta))], axis=1)
  # Measured: 0.07 % (N), 0.32 % (Pi) at the calibration with sigma_zeta = 0.01 (the box's low
  # end; the ZLB binds 0.14 % of the time); 0.04 %, 0.03 % at the second theta. Not everywhere:
  # at theta_pi 2.5, theta_y 0.5, phi 1300, rho 0.5 the Pi slope is 1.06 % below `linearised`
  # even at sigma_zeta = 0.001 (residuals 1e-15 there): `linearised` expands around zero, but
  # with chi = 0.91 the steady state has log N = -0.0005 and log(Pi/Pibar) = +1.8e-4, and the
  # NKPC's Pi'/R discount times that inflation level adds a first-order term ~ theta_y.
  assert np.abs(slope / linear - 1).max() < 0.005, slope / linear - 1


def test_marks_where_no_stable_equilibrium_exists():
  theta = np.stack([ZLB.calibration, ZLB.theta_from(dict(rho_zeta=0.9, sigma_zeta=0.025))])
  ref = ti.solve(ZLB, theta)
  assert ref.valid.tolist() == [True, False]
  assert np.isfinite(ref.values).all()


def test_residuals_vanish_at_the_grid_points(true_theta):
  x, w = ti.trapezoid_normal(40)        # the solver's default nodes
  grid = len(true_theta.grid)
  state = tf.constant(true_theta.std[0] * true_theta.grid[:, None])        # [grid, 1]
  theta = tf.constant(np.repeat(true_theta.theta, grid, 0))
  eps = tf.constant(np.broadcast_to(x[:, None, None], (40, grid, 1)).copy())
  today, tomorrow = ZLB.policies(true_theta.as_policy(), state, theta, eps)
  residuals = ZLB.equilibrium(state, theta, eps, today, tomorrow, tf.constant(w))
  assert np.abs(residuals.numpy()).max() < 1e-9   # measured 8e-11


def test_euler_errors_rank_the_reference_above_the_linearised_policy(true_theta):
  state = tf.constant(np.random.default_rng(0).normal(size=(500, 1)) * true_theta.std[0])
  theta = tf.constant(np.repeat(true_theta.theta, 500, 0))
  ref = rank_zlb.euler_errors(ZLB, true_theta.as_policy(), state, theta, dtype=tf.float64)
  linear = lambda s, t: tf.stack([a * s[:, 0] for a in ZLB.linearised(t)], axis=1)
  lin = rank_zlb.euler_errors(ZLB, linear, state, theta)
  # Measured: reference mean -6.2 (max -4.8), linearised mean -4.2 (max -1.9).
  assert ref.mean() < -5.5 and lin.mean() > -5 and lin.max() > -3
