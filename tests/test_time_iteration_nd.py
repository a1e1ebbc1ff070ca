"""N-dimensional time iteration (nk_keras/reference/time_iteration_nd.py).

Checked on a known truth (the NK closed form, from zeros), against the one-dimensional solver
on rank_zlb, on rank_zlb_inertia collapsed to rank_zlb (rho_R = 0, sigma_a ~ 0: MODEL.md
section 9), by its own residuals off the grid, by refinement and where no equilibrium exists.
Grids are small here (seconds each); the module docstring has the accuracy of its defaults.
"""

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import economies
from nk_keras.reference import time_iteration as ti
from nk_keras.reference import time_iteration_nd as nd

ZLB = economies.get("rank_zlb")
INERTIA = economies.get("rank_zlb_inertia")
Z = np.linspace(-2.5, 2.5, 11)   # rank_zlb's accuracy states, in ergodic std
SMALL = dict(n_grid=(9, 5, 7), n_nodes=(7, 3), tol=1e-10)   # rank_zlb_inertia in seconds


@pytest.fixture(scope="module")
def inertia_small():
  return nd.solve(INERTIA, INERTIA.calibration[None], **SMALL)


def test_reproduces_the_nk_closed_form_from_zeros():
  nk = economies.get("nk")
  # The box's low corner with phi_y > 0: at phi_y = 0 the library's perturbation (unpivoted
  # elimination) divides by zero, and a theta without a perturbation is marked invalid.
  low = nk.box_low.copy()
  low[nk.param_names.index("phi_y")] = 0.1
  theta = np.stack([nk.calibration, low, nk.box_high])
  # Linear policies are interpolated exactly and Gauss-Hermite is exact for them: what is left
  # is the iteration's own error.
  ref = nd.solve(nk, theta, n_grid=11, n_nodes=5, init="zeros", tol=1e-13)
  assert ref.valid.all() and (ref.iterations > 20).all()
  state = ref.std[:, None, :] * Z[None, :, None]                          # [3, len(Z), 1]
  exact = nk.closed_form(tf.constant(state.reshape(-1, 1)),
                         tf.constant(np.repeat(theta, len(Z), 0))).numpy().reshape(3, len(Z), 2)
  assert np.abs(ref.policies(state) - exact).max() < 1e-8 * np.abs(exact).max()


def test_agrees_with_the_one_dimensional_solver_on_rank_zlb():
  options = dict(n_grid=201, n_nodes=40, quadrature="trapezoid", span=5.0, tol=1e-12)
  one = ti.solve(ZLB, ZLB.calibration[None], **options)
  ref = nd.solve(ZLB, ZLB.calibration[None], **options)
  assert ref.valid.all() and np.allclose(ref.std[0], one.std)
  state = (one.std[0] * Z)[None, :, None]
  # The same grid, nodes and equations from different warm starts: the same fixed point.
  assert np.abs(ref.policies(state) - one.policies(state)).max() < 1e-10


def test_inertia_without_inertia_or_tfp_is_rank_zlb():
  shared = {k: v for k, v in zip(ZLB.param_names, ZLB.calibration)}
  theta = INERTIA.theta_from(dict(shared, rho_R=0.0, sigma_a=1e-6)).astype(np.float64)[None]
  one = ti.solve(ZLB, ZLB.calibration[None], n_grid=101, n_nodes=30, quadrature="hermite",
                 span=5.0, tol=1e-12)
  ref = nd.solve(INERTIA, theta, n_grid=(101, 2, 2), n_nodes=(30, 2), span=5.0, tol=1e-12)
  assert ref.valid.all()
  # At a = 0 and any rstar_lag (the rule no longer reads it) the policies are rank_zlb's.
  zeta = one.std[0] * Z
  for rstar in (-1.0, 1.0):
    state = np.stack([zeta, 0 * zeta, ref.center[0, 2] + rstar * ref.std[0, 2] + 0 * zeta], -1)
    assert np.abs(ref.policies(state[None]) - one.policies(zeta[None, :, None])).max() < 1e-9


def test_marks_where_no_stable_equilibrium_exists():
  theta = np.stack([ZLB.calibration,
                    ZLB.theta_from(dict(rho_zeta=0.9, sigma_zeta=0.025, theta_pi=1.5,
                                        theta_y=0.5))])
  ref = nd.solve(ZLB, theta, n_grid=101, n_nodes=20)
  assert ref.valid.tolist() == [True, False]
  assert ti.solve(ZLB, theta).valid.tolist() == [True, False]


@pytest.mark.parametrize("order", [1, 3])
def test_interpolation_is_exact_to_its_order_and_linear_beyond_the_grid(order):
  """Linear interpolation reproduces products of linear functions of each state, cubic
  (Catmull-Rom) products of quadratics away from the first and last cells; beyond the grid
  both extrapolate the outermost cell's line."""
  shape, span = (9, 6, 8), (2.0, 3.0, 2.5)
  grid = nd.grid_points(shape, span)                                         # [G, 3]
  f = lambda x: ((1 + 0.3 * x[..., 0] + (order == 3) * 0.2 * x[..., 0] ** 2)
                 * (2 - 0.5 * x[..., 1]) * (0.7 + (order == 3) * 0.1 * x[..., 2] ** 2))
  values = tf.constant(np.stack([f(grid), -f(grid)], -1))                    # [G, 2]
  rng = np.random.default_rng(0)
  steps = np.array(span) * 2 / (np.array(shape) - 1)
  inner = rng.uniform(-1, 1, (500, 3)) * (np.array(span) - steps)            # not the end cells
  one = lambda n: tf.constant(np.ones((n, 3)))
  at = lambda x: nd.interpolate(values, tf.constant(x), tf.zeros(len(x), tf.int64),
                                tf.constant(np.zeros((len(x), 3))), one(len(x)), shape, span,
                                order).numpy()
  np.testing.assert_allclose(at(inner)[:, 0], f(inner), rtol=1e-12)
  # Beyond the first face of the first state: the line through its first two grid points.
  x0 = np.array([[-span[0] - 0.7, 0.4, -0.3]])
  first = x0.copy(); first[0, 0] = -span[0]
  second = x0.copy(); second[0, 0] = -span[0] + steps[0]
  line = at(first) - 0.7 / steps[0] * (at(second) - at(first))
  np.testing.assert_allclose(at(x0), line, rtol=1e-12)
