"""The HANK's continuum steady state against MODEL.md section 10's independent calculation."""

import numpy as np
import pytest

from nk_keras.economies import hank


def test_rouwenhorst_has_the_requested_persistence_and_dispersion():
  e, P, pi = hank.rouwenhorst(3, 0.966, 0.5)
  log_e = np.log(e) - pi @ np.log(e)
  assert np.allclose(P.sum(axis=1), 1.0) and np.allclose(pi @ P, pi)
  assert pi @ e == pytest.approx(1.0)
  assert np.sqrt(pi @ log_e ** 2) == pytest.approx(0.5)
  autocov = (pi * log_e) @ P @ log_e
  assert autocov / (pi @ log_e ** 2) == pytest.approx(0.966)


@pytest.fixture(scope="module")
def steady():
  return hank.steady_state(n_grid=500)


def test_beta_clears_the_bond_market_as_in_model_md(steady):
  # MODEL.md: beta 0.99180, stable to 1e-6 across grids; ours moves 3e-6 from 500 to 1,000 points.
  assert steady["beta"] == pytest.approx(0.99180, abs=1e-5)
  D, saved = steady["distribution"], steady["savings"]
  assert np.sum(D * saved) == pytest.approx(hank.HANK_FIXED["Bbar"], rel=1e-8)


def test_the_distribution_matches_model_md(steady):
  assert steady["share_at_limit"] == pytest.approx(0.134, abs=1e-3)
  assert np.all(steady["share_at_limit_by_state"][1:] == 0.0)     # all in the lowest state
  assert steady["wealth_by_state"] == pytest.approx([1.43, 4.13, 12.71], abs=6e-3)
  assert steady["wealth_gini"] == pytest.approx(0.64, abs=5e-3)
