"""Run as a script by tests/test_training.py, in the background lane (tests/background.py): each
regime's short run, the same calls the test made in its own process before.

  python tests/learning_check.py  ->  one JSON line per regime on stdout
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras import accuracy, training  # noqa: E402

SHORT = dict(mc=2, lr=3e-3, eta_min=3e-6, seed=1)
RUNS = {"fresh": dict(iterations=1000), "cached": dict(iterations=1000, pool=20_000),
        "internal": dict(iterations=200, internal=5),
        "stepping": dict(iterations=200, internal=5, num_steps=10, redraw_every=1)}

if __name__ == "__main__":
  # The metric's errors alone, on one set of points for the four runs: `accuracy.evaluate`'s
  # residual statistics and error estimate, 4-5 s a run, are other tests' business.
  points = None
  for regime, options in RUNS.items():
    opts = training.TrainOptions(regime=regime, **SHORT, **options)
    model = training.build_regime(opts)
    loss = training.fit(model, opts, steps_per_epoch=200, verbose=False).history["loss"]
    points = points or accuracy.Points(model.economy, n_theta=2000)
    errors = points.errors(model.policy)                                  # [L, n, n_pol]
    print(json.dumps({"regime": regime, "loss": [float(loss[0]), float(loss[-1])],
                      "errors_pct": {name: accuracy.stats(errors[..., j]) for j, name in
                                     enumerate(model.economy.policy_names)}}), flush=True)
