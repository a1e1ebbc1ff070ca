"""Diagnostic, not a solver: fit the policy network to the closed form by plain regression.

It separates what the network and optimiser can reach from what the residual loss adds: if
regression on the exact policy stalls at some error, residual training cannot beat it with the
same budget. The closed form enters the loss here; it never does in nk_keras' training.

  python -m benchmarks.fit_closed_form --steps=30000 --batch=100 --relative
"""

import time

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 30_000, "Gradient steps.", lower_bound=1)
flags.DEFINE_integer("batch", 100, "Points per step.", lower_bound=1)
flags.DEFINE_integer("width", 64, "Units per hidden layer.", lower_bound=1)
flags.DEFINE_integer("depth", 5, "Hidden layers.", lower_bound=1)
flags.DEFINE_string("activation", "tanh", "Hidden activation.")
flags.DEFINE_string("normalization", "ergodic", "ExtendedPolicy normalization.")
flags.DEFINE_float("lr", 3e-3, "Initial learning rate (cosine decay to lr/1000).")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW's decoupled weight decay.", lower_bound=0)
flags.DEFINE_bool("relative", False, "Errors relative to the policy at one ergodic std (the "
                  "accuracy metric) instead of in ergodic std of the state.")


def main(argv):
  import keras
  import tensorflow as tf
  from nk_keras import accuracy, economies, regimes
  from nk_keras.network import ExtendedPolicy
  economy = economies.get("nk")
  policy = ExtendedPolicy.create(economy, FLAGS.normalization, width=FLAGS.width,
                                 depth=FLAGS.depth, activation=FLAGS.activation)
  sampler = regimes.build("fresh", policy, batch=FLAGS.batch, mc=2)
  variables = policy.net.trainable_variables
  optimizer = keras.optimizers.AdamW(
      keras.optimizers.schedules.CosineDecay(FLAGS.lr, FLAGS.steps, alpha=1e-3),
      weight_decay=FLAGS.weight_decay, global_clipnorm=1.0)
  optimizer.build(variables)

  @tf.function(jit_compile=True)
  def step(i):
    theta, state = sampler.draw_points(sampler.step_seeds(i, 2))
    std = economy.ergodic_std(theta)                             # [batch, 1]
    scale = (tf.abs(economy.closed_form(std, theta)) if FLAGS.relative
             else std)                                           # [batch, n_pol] or [batch, 1]
    with tf.GradientTape() as tape:
      err = (policy(state, theta) - economy.closed_form(state, theta)) / scale
      loss = tf.reduce_mean(tf.square(err))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  start = time.perf_counter()
  for i in range(FLAGS.steps):
    loss = step(tf.constant(i))
  wall = time.perf_counter() - start
  report = accuracy.evaluate(economy, policy, n_theta=20_000)
  print(f"{FLAGS.steps} steps in {wall:.0f} s, final loss {float(loss):.2e}")
  print(accuracy.one_line(report))


if __name__ == "__main__":
  cli.run(main)
