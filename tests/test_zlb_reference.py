"""The ZLB economy's independent reference solver (tests/zlb_reference.py) checked on its own:
refinement, the moments docs/models.md states, the linearised closed form at tiny shocks, residuals,
and non-convergence reported without exceptions. Pure NumPy (no TensorFlow, no nk_keras)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zlb_reference as zr  # noqa: E402

TRUE = zr.TRUE[None]


@pytest.fixture(scope="module")
def true_sol():
  return zr.solve(TRUE)


def test_refinement_grid_and_nodes(true_sol):
  # Default (801 points, 64 nodes) against twice the grid and twice the nodes, compared at the
  # default's grid points and at zeta = k sigma_erg, k in -2.5..2.5. Measured at the true theta:
  # 4.6e-7 in log N, 8.1e-8 in log Pi at the grid points, 2.6e-7 and 5.9e-8 at the 51 points
  # (against a 6401-point grid: 5.3e-7 and 1.0e-7); ZLB frequency 9.4155 % vs 9.4112 %.
  fine = zr.solve(TRUE, n_grid=2 * zr.N_GRID - 1, n_nodes=2 * zr.N_NODES)
  assert fine.converged.all()
  assert np.abs(true_sol.log_N - fine.log_N[:, ::2]).max() < 1e-6
  assert np.abs(true_sol.log_Pi - fine.log_Pi[:, ::2]).max() < 2e-7
  z = np.linspace(-2.5, 2.5, 51)[None] * zr.sigma_erg(TRUE)[:, None]
  for a, b, tol in zip(zr.policy(true_sol, z), zr.policy(fine, z), (1e-6, 2e-7)):
    assert np.abs(a - b).max() < tol
  # Moments move by much less than they are reported to.
  assert abs(zr.zlb_frequency(true_sol)[0] - zr.zlb_frequency(fine)[0]) < 5e-4
  np.testing.assert_allclose(zr.ergodic_sd(true_sol), zr.ergodic_sd(fine), rtol=1e-4)


def test_gauss_hermite_is_limited_by_the_kink():
  # Why the default quadrature cuts the normal at the kink: plain Gauss-Hermite with 48 nodes
  # is off by ~2e-5 in log N at the true theta (measured 2.3e-5), the kink-split rule by <1e-6.
  gh = zr.solve(TRUE, n_grid=401, n_nodes=48, quad="gh")
  split = zr.solve(TRUE, n_grid=401, n_nodes=48)
  ref = zr.solve(TRUE, n_grid=401, n_nodes=160)
  assert np.abs(split.log_N - ref.log_N).max() < 1e-6
  assert np.abs(gh.log_N - ref.log_N).max() > 5e-6


def test_moments_at_the_true_theta(true_sol):
  # docs/models.md: ZLB about 9 % of the time, sd of log N about 1.4 %, of 400 log Pi about 0.4 pp.
  # Measured: 9.42 %, 1.440 %, 0.381 pp; 187 iterations.
  assert true_sol.converged.all()
  assert 0.07 < zr.zlb_frequency(true_sol)[0] < 0.11
  sd = zr.ergodic_sd(true_sol)[0]
  assert 0.013 < sd[0] < 0.015
  assert 0.33 < 400 * sd[1] < 0.45


TINY = np.array([zr.TRUE, [1.5, 0.05, 700, 0.5, 0.01], [2.5, 0.5, 1300, 0.9, 0.025],
                 [1.6, 0.45, 800, 0.85, 0.02], [2.4, 0.1, 1200, 0.55, 0.015]])
TINY[:, 4] /= 1000.0        # sigma_zeta / 1000: the ZLB never binds


def tiny_slopes(theta):
  sol = zr.solve(theta, n_grid=101)
  assert sol.converged.all()
  assert zr.zlb_frequency(sol).max() == 0.0
  h = 0.5 * zr.sigma_erg(theta)[:, None] * np.array([[-1.0, 1.0]])
  ln_n, ln_pi = zr.policy(sol, h)
  return (ln_n[:, 1] - ln_n[:, 0]) / (h[:, 1] - h[:, 0]), \
      (ln_pi[:, 1] - ln_pi[:, 0]) / (h[:, 1] - h[:, 0])


def test_tiny_shocks_match_the_linearised_closed_form():
  # Slopes of log N and log(Pi / Pibar) at zeta = 0 against the closed form. Measured at the true
  # theta: 0.06 % (log N), 0.36 % (log Pi); over the five thetas up to 0.26 % (log N) and 0.92 %
  # (log Pi, at rho_zeta 0.85, theta_y 0.45; 0.64 % at the corner rho_zeta 0.9, phi 1300):
  # the calibrated chi = 0.91 differs from (eps - 1) / eps, so the steady state has log N = -5e-4
  # and Pi != Pibar (through theta_y), which the NKPC's Pi'/R discount turns into a slope
  # difference magnified by 1 / (1 - beta rho). Within 0.5 % for the other three.
  slope_n, slope_pi = tiny_slopes(TINY)
  a, b = zr.linearised(TINY)
  np.testing.assert_allclose(slope_n, a, rtol=5e-3)
  np.testing.assert_allclose(slope_pi[[0, 1, 4]], b[[0, 1, 4]], rtol=5e-3)
  np.testing.assert_allclose(slope_pi, b, rtol=1.2e-2)


def test_tiny_shocks_exact_closed_form_at_the_undistorted_steady_state(monkeypatch):
  # With chi = (eps - 1) / eps the steady state is N = 1, Pi = Pibar and the closed form is the
  # exact first-order solution: measured agreement 1e-8 (relative) at all five thetas.
  monkeypatch.setattr(zr, "CHI", (zr.EPS - 1.0) / zr.EPS)
  slope_n, slope_pi = tiny_slopes(TINY)
  a, b = zr.linearised(TINY)
  np.testing.assert_allclose(slope_n, a, rtol=1e-6)
  np.testing.assert_allclose(slope_pi, b, rtol=1e-6)


def test_residuals_at_the_grid_points(true_sol):
  # Measured: Euler (in logs) 8e-13, NKPC (its own units, terms of order eps = 11) 2e-10:
  # the fixed point's tolerance 1e-12 times the NKPC's Jacobian (~phi).
  f1, f2 = zr.residuals(true_sol)
  assert np.abs(f1).max() < 1e-11
  assert np.abs(f2).max() < 1e-9
  # Off the grid the Euler errors show the interpolation error: measured max -6.87 (in the kink's
  # cell), median -8.27 on 3001 points over +-3 sigma_erg.
  z = np.linspace(-3, 3, 3001)[None] * zr.sigma_erg(TRUE)[:, None]
  e = zr.euler_errors(true_sol, z)
  assert e.max() < -6.5 and np.median(e) < -8.0


def test_no_equilibrium_is_reported_not_raised():
  theta = np.array([zr.TRUE, [2.0, 0.25, 1000, 0.9, 0.025], [1.5, 0.05, 700, 0.5, 0.01],
                    [2.0, 0.5, 1000, 0.9, 0.025]])
  sol = zr.solve(theta, n_grid=201, max_iter=500)
  np.testing.assert_array_equal(sol.converged, [True, False, True, False])
  freq = zr.zlb_frequency(sol)
  assert np.isfinite(freq[[0, 2]]).all() and np.isnan(freq[[1, 3]]).all()
  # The converged rows are the same as when solved alone.
  alone = zr.solve(theta[[0]], n_grid=201, max_iter=500)
  np.testing.assert_allclose(sol.log_N[0], alone.log_N[0], rtol=0, atol=1e-14)
