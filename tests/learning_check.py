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
  for regime, options in RUNS.items():
    opts = training.TrainOptions(regime=regime, **SHORT, **options)
    model = training.build_regime(opts)
    loss = training.fit(model, opts, steps_per_epoch=200, verbose=False).history["loss"]
    report = accuracy.evaluate(model.economy, model.policy, n_theta=2000)
    print(json.dumps({"regime": regime, "loss": [float(loss[0]), float(loss[-1])],
                      "errors_pct": report["errors_pct"]}), flush=True)
