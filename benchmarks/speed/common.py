"""What the sections share: KMR's configuration, timing a regime, FLOP counts, printing."""

import dataclasses
import gc
import statistics
import time

# KMR's configuration (docs/models.md, "The method in one paragraph": network, batch, mc and
# their AdamW, as sections 1 and 2 compare steps/s with their code); the rest of TrainOptions
# stays at our defaults.
PAPER = dict(width=64, depth=5, activation="celu", batch=100, mc=10, optimizer="adamw")


def table(headers, rows):
  """Prints `rows` under `headers`: first column left-aligned, the others right-aligned."""
  cells = [list(headers)] + [[str(c) for c in row] for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
  fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(row, widths)))
  print(fmt(cells[0]))
  print("  ".join("-" * w for w in widths))
  for row in cells[1:]:
    print(fmt(row))


def spread(rates):
  """Median, min and max of a list of rates."""
  return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def duration(seconds):
  return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def with_steps(options, steps):
  """`options` whose schedule is exactly `steps` gradient steps."""
  per_iteration = dataclasses.replace(options, iterations=1).gradient_steps
  if steps % per_iteration:
    raise ValueError(f"{steps} steps is not a whole number of iterations of {per_iteration}")
  return dataclasses.replace(options, iterations=steps // per_iteration)


def release():
  """Drops the previous configuration's model and compiled functions before the next one."""
  import keras
  keras.backend.clear_session()
  gc.collect()


def make_clock():
  """A callback holding the seconds of its last `fit`, from train begin to train end (so
  without `fit`'s data-adapter set-up)."""
  import keras

  class Clock(keras.callbacks.Callback):
    seconds = None

    def on_train_begin(self, logs=None):
      self.start = time.perf_counter()

    def on_train_end(self, logs=None):
      self.seconds = time.perf_counter() - self.start

  return Clock()


def timed_fit(options, steps, repeats):
  """Builds the regime, compiles it with one warm-up `fit`, then times `repeats` fits of `steps`
  gradient steps. Returns (model, seconds per repeat, seconds of the warm-up call)."""
  from nk_keras import training
  model = training.build_regime(with_steps(options, steps))
  clock = make_clock()
  # Same steps per compiled call as the timed fits (fit takes min(steps_per_execution, epoch)),
  # so the warm-up compiles the very function that is timed.
  warm = min(steps, options.steps_per_execution)
  training.fit(model, with_steps(options, warm), steps_per_epoch=warm, callbacks=[clock],
               verbose=False)
  first = clock.seconds
  seconds = []
  for _ in range(repeats):
    training.fit(model, with_steps(options, steps), steps_per_epoch=steps, callbacks=[clock],
                 verbose=False)
    seconds.append(clock.seconds)
  return model, seconds, first


def forward_flops(net):
  """Matmul FLOPs of one forward pass of one point: 2 * sum(fan_in * fan_out) over Dense layers
  (for our default normalisation: 9 inputs, 4 outputs, level and slope of X and Pi)."""
  import keras
  return 2 * sum(int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
                 for layer in net.layers if isinstance(layer, keras.layers.Dense))


def step_flops(options, forward):
  """Network matmul FLOPs of one gradient step: today's and the mc tomorrows' points forward
  and backward (backward = 2 x forward), plus one forward pass per point at one ergodic std
  when the weighting is relative (under stop_gradient)."""
  with_grad = options.batch * (1 + options.mc)
  forward_only = options.batch if options.weighting == "relative" else 0
  return (3 * with_grad + forward_only) * forward

