"""`--init`: a run that starts from another run's policy."""

import numpy as np
import pytest

from nk_keras import training
from nk_keras.errors import UserError


def test_init_starts_from_the_saved_policy_and_refuses_another_shape(fresh_run, tmp_path):
  _, model, run = fresh_run   # the session's short fresh run (tests/conftest.py), read only
  saved = model.policy.net.get_weights()
  warm = training.build_regime(training.TrainOptions(regime="fresh", init=str(run)))
  for a, b in zip(saved, warm.policy.net.get_weights()):
    np.testing.assert_array_equal(a, b)
  cold = training.build_regime(training.TrainOptions(regime="fresh"))
  assert not np.array_equal(saved[0], cold.policy.net.get_weights()[0])
  with pytest.raises(UserError, match="another network shape"):
    training.build_regime(training.TrainOptions(regime="fresh", width=32, init=str(run)))
  with pytest.raises(UserError, match="no saved policy"):
    training.build_regime(training.TrainOptions(regime="fresh", init=str(tmp_path / "none")))
