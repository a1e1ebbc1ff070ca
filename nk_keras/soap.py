"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024, "SOAP:
Improving and Stabilizing Shampoo using Adam").

Why not plain Adam: the extended network must fit a smooth function of the state and eight
parameters to ~1e-3 of its size, and Adam's per-coordinate scaling leaves the slow directions of
that fit slow (the error fell only as samples^-0.3; BUILD_NOTES.md, "Time to accuracy"). SOAP
keeps, for each weight matrix `W [rows, cols]`, running averages of `G G^T [rows, rows]` and
`G^T G [cols, cols]` (G its gradient), whose eigenvectors `Q_L`, `Q_R` rotate the gradient into
a basis where the layer's curvature is close to diagonal; Adam's moments live in that basis.
Vectors (biases) get plain Adam. The bases are solved at the first step and refreshed every
`precondition_every` steps by one step of subspace iteration (`refreshed`), inside the compiled
step; the second moments keep their coordinates across a refresh, as each basis vector moves
little. On the default run: 25,000 steps to about 4x below the bar that AdamW misses after
50,000, at 10 % more time per step.

Everything is a Keras optimizer variable, so checkpoints hold it and a restored run continues
exactly; weight decay, clipping and schedules come from `keras.optimizers.Optimizer`.
"""

import keras
import tensorflow as tf


class SOAP(keras.optimizers.Optimizer):
  """`keras.optimizers.Optimizer` arguments (`learning_rate`, `weight_decay`,
  `global_clipnorm`, ...) plus Adam's `beta_1`, `beta_2`, `epsilon`, the decay `shampoo_beta`
  of the two factors and `precondition_every` (steps between eigenbasis refreshes)."""

  def __init__(self, learning_rate=3e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               shampoo_beta=0.99, precondition_every=10, name="soap", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    if precondition_every < 1:
      raise ValueError(f"precondition_every must be >= 1, got {precondition_every}")
    self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
    self.shampoo_beta, self.precondition_every = shampoo_beta, precondition_every

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._momentums, self._velocities, self._factors = [], [], []
    for var in var_list:
      self._momentums.append(self.add_variable_from_reference(var, "momentum"))
      self._velocities.append(self.add_variable_from_reference(var, "velocity"))
      factors = None
      if len(var.shape) == 2:
        name = var.path.replace("/", "_")
        factors = [self.add_variable((n, n), initializer="zeros", name=f"{name}_{kind}")
                   for kind, n in (("L", var.shape[0]), ("R", var.shape[1]),
                                   ("QL", var.shape[0]), ("QR", var.shape[1]))]
      self._factors.append(factors)

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    m, v = self._momentums[index], self._velocities[index]
    g = tf.cast(gradient, variable.dtype)
    rotate = back = lambda x: x
    if self._factors[index] is not None:
      L, R, QL, QR = self._factors[index]
      self.assign(L, self.shampoo_beta * L + (1 - self.shampoo_beta) * tf.matmul(
          g, g, transpose_b=True))
      self.assign(R, self.shampoo_beta * R + (1 - self.shampoo_beta) * tf.matmul(
          g, g, transpose_a=True))
      for factor, basis in ((L, QL), (R, QR)):
        self.assign(basis, refreshed(factor, basis, self.iterations, self.precondition_every))
      rotate = lambda x: tf.matmul(tf.matmul(QL, x, transpose_a=True), QR)
      back = lambda x: tf.matmul(tf.matmul(QL, x), QR, transpose_b=True)
    step = tf.cast(self.iterations + 1, variable.dtype)
    self.assign(m, self.beta_1 * m + (1 - self.beta_1) * g)
    self.assign(v, self.beta_2 * v + (1 - self.beta_2) * tf.square(rotate(g)))
    alpha = tf.cast(learning_rate, variable.dtype) * tf.sqrt(1 - self.beta_2 ** step) / (
        1 - self.beta_1 ** step)
    self.assign_sub(variable, alpha * back(rotate(m) / (tf.sqrt(v) + self.epsilon)))

  def get_config(self):
    config = super().get_config()
    config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                  shampoo_beta=self.shampoo_beta, precondition_every=self.precondition_every)
    return config


def refreshed(factor, basis, iteration, every):
  """The eigenbasis `[n, n]` of the symmetric `factor` at this `iteration`: solved at the first
  step, by descending eigenvalue; every `every` steps one step of subspace iteration from the
  current `basis` (a QR of `factor @ basis`: 12x cheaper than an eigendecomposition in XLA on the
  CPU, and the factor moves little between refreshes); otherwise `basis` unchanged."""
  def solve():
    return tf.reverse(tf.linalg.eigh(factor)[1], axis=[1])
  def iterate():
    return tf.cond(tf.equal(iteration, 0), solve,
                   lambda: tf.linalg.qr(tf.matmul(factor, basis))[0])
  return tf.cond(tf.equal(iteration % every, 0), iterate, lambda: tf.identity(basis))
