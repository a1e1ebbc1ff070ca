"""Training regimes: one gradient step; one residual loss with four ways to choose the points,
and one regression on the economy's reference solution (distillation).

Each regime is a `keras.Model` whose `train_step` performs exactly one gradient step, so `fit`
with `steps_per_execution` runs many steps per compiled call and the optimiser's `iterations`
counts gradient steps. The residual regimes differ only in `points(step, seed)`, which returns
this step's `theta [batch, n_params]` and `state [batch, n_state]`. `Distill` replaces the loss
(`loss_terms`): it fits the reference, so it needs one (a closed form or a solver) and is the
only regime through which a reference enters training.

All randomness is stateless, keyed by (seed, gradient step, replica): a run is reproducible on
CPU and a run restored from a checkpoint continues the same random stream.

Under a `tf.distribute` strategy (`nk_keras/distribute.py`) a regime is built inside the
strategy's scope with `batch` the per-replica batch: each replica draws its own points and
shocks, and the gradient step all-reduces the gradient of the global mean loss. With one
replica every number is that of a run without a strategy.
"""

import keras
import numpy as np
import tensorflow as tf

from nk_keras.errors import UserError
from nk_keras.train_options import REGIMES, WEIGHTINGS

# Floor of the policy size (in ergodic std of the state) that relative errors divide by, so an
# untrained network near zero does not blow the loss up; true sizes in the NK box are >= 0.02.
RELATIVE_FLOOR = 0.01


class Regime(keras.Model):
  """Shared loss and gradient step. Subclasses implement `points`."""

  def __init__(self, policy, *, batch=100, mc=10, loss_weights=None, weighting="ergodic",
               stratified=False, grid=False, unbiased=False, state_scale=1.0, level_states=1,
               level_weight=1.0, seed=0, **kwargs):
    """`loss_weights`: dict residual name -> weight (1 for those not named); `stratified`:
    shocks drawn in strata of the normal law (`Economy.draw_shocks`); `grid`: expectations on
    a randomly shifted grid of `mc` nodes (`Economy.shock_grid`); `unbiased`: the loss
    from two independent sets of shocks (`residual_loss`); `state_scale`: states drawn with
    `state_scale` times their ergodic std (> 1 puts more points in the tails, which the accuracy
    metric weighs as much as the centre); `level_states` > 1: the batch holds each theta at that
    many states and the loss adds, with `level_weight`, each theta's persistent level error
    (`level_errors`)."""
    super().__init__(**kwargs)
    if mc < 2 or mc % 2:
      raise UserError(f"mc must be an even number >= 2 (antithetic pairs), got {mc}")
    if level_states < 1 or batch % level_states:
      raise UserError(f"level_states must be >= 1 and divide the batch ({batch}), got "
                      f"{level_states}")
    if level_states > 1 and weighting not in ("newton", "relative"):
      raise UserError("level_states > 1 maps residuals to policy errors: it needs weighting "
                      "'newton' or 'relative'")
    economy = policy.economy
    if weighting not in WEIGHTINGS:
      raise UserError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting not in economy.weightings:
      raise UserError(f"weighting {weighting!r} is not supported by economy {economy.name!r} "
                      f"(supported: {', '.join(economy.weightings)})")
    loss_weights = dict(loss_weights or {})
    groups = economy.groups("residuals")
    known = set(economy.residual_names) | {name for name, _ in groups}
    unknown = sorted(set(loss_weights) - known)
    if unknown:
      raise UserError(f"loss weights for unknown residual(s) {', '.join(unknown)}; economy "
                      f"{economy.name!r} has {', '.join(sorted(known))}")
    if (weighting in ("newton", "relative") and economy.error_shape == "proportional"
        and (economy.n_state != 1 or economy.endogenous_states)):
      raise UserError(f"weighting {weighting!r}: error_shape 'proportional' (an error "
                      f"proportional to the state) is defined for one exogenous state; economy "
                      f"{economy.name!r} has {economy.n_state} ({', '.join(economy.state_names)})")
    self.policy, self.economy = policy, economy
    self.net = policy.net
    self.batch, self.mc, self.seed = batch, mc, seed
    self.stratified, self.unbiased, self.state_scale = stratified, unbiased, state_scale
    self.grid = grid
    self.level_states, self.level_weight = level_states, level_weight
    # Fixed by the strategy the regime is built under (1 without one); `batch` is per replica.
    strategy = tf.distribute.get_strategy()
    self.replicas = strategy.num_replicas_in_sync
    # Replicas on other machines (MultiWorkerMirroredStrategy over several workers).
    self.multi_worker = self.replicas > 1 and self.replicas > len(
        strategy.extended.worker_devices)
    # An agent residual (e.g. every household's Euler equation) weighs 1 / L a column, so an
    # agent set counts in the loss as one aggregate equation does, at any L: summed, the NKPC of
    # hank_zlb was 1 term of 51 at L = 50, and training left it 1 % off in hours. Weights given
    # by group name apply to each column of the group; by column name, to that column.
    weights = np.ones(len(economy.residual_names))
    for name, columns in groups:
      for c in columns:
        column = economy.residual_names[c]
        weights[c] = loss_weights.get(column, loss_weights.get(name, 1.0)) / len(columns)
    self.loss_weights = tf.constant(weights, tf.float32)
    self.weighting = weighting
    # The divergence guard's memory (`callbacks.StopOnDivergence`): start, best, best step and a
    # set flag, saved in every checkpoint with the weights, so a resumed run is judged against
    # the same start and best as the uninterrupted one. float64: its tests compare ratios.
    self.guard_state = self.add_weight(shape=(4,), initializer="zeros", trainable=False,
                                       dtype="float64", name="divergence_guard")
    self.trackers = [keras.metrics.Mean(name="loss")] + [
        keras.metrics.Mean(name=f"mse_{name}") for name, _ in economy.groups("policies")]
    if level_states > 1:
      self.trackers.append(keras.metrics.Mean(name="level_loss"))

  @property
  def metrics(self):
    return self.trackers

  def step_seeds(self, step, n):
    """`n` independent stateless seeds `[n, 2]` for gradient step `step`."""
    # int32 seeds: TFP's samplers take no other dtype.
    key = tf.random.experimental.stateless_fold_in(
        tf.constant([self.seed, 0], tf.int32), tf.cast(step, tf.int32))
    key = tf.random.experimental.stateless_fold_in(key, self.replica_id())
    return tf.random.experimental.stateless_split(key, n)

  def replica_id(self):
    ctx = tf.distribute.get_replica_context()
    return tf.cast(ctx.replica_id_in_sync_group, tf.int32) if ctx is not None else 0

  def draw_points(self, seeds):
    """Fresh `theta [batch, n_params]` from the prior and ergodic `state [batch, n_state]`."""
    theta = self.draw_theta(self.batch, seeds[0])
    return theta, self.draw_state(theta, seeds[1])

  def draw_theta(self, n, seed):
    """`n` parameter rows `[n, n_params]`: `n / level_states` draws, each repeated on
    `level_states` consecutive rows (one theta group)."""
    if self.level_states == 1:
      return self.economy.draw_theta(n, seed)
    return tf.repeat(self.economy.draw_theta(n // self.level_states, seed), self.level_states,
                     axis=0)

  def draw_state(self, theta, seed):
    """States `[batch, n_state]` for `theta`: ergodic draws, widened by `state_scale`."""
    state = self.economy.draw_state(theta, seed)
    return state if self.state_scale == 1.0 else self.state_scale * state

  def points(self, step, seeds):
    raise NotImplementedError

  def held(self, value, name):
    """A non-trainable float32 variable holding `value` (a pool of points or a table: saved in
    checkpoints, not baked into the compiled graph as a constant)."""
    variable = self.add_weight(shape=value.shape, initializer="zeros", trainable=False,
                               name=name)
    variable.assign(tf.cast(value, tf.float32))
    return variable

  def shocks(self, seed, unbiased=None):
    """This step's innovations `[mc, batch, n_shock]`, or `[2 * mc, batch, n_shock]` (two
    independent sets) for the unbiased loss, and their expectation weights `[mc or 2 mc, batch]`
    (None for Monte Carlo)."""
    def draw(s):
      if self.grid:
        return self.economy.shock_grid(self.mc, self.batch, s)
      return self.economy.draw_shocks(self.mc, self.batch, s, self.stratified), None
    if not (self.unbiased if unbiased is None else unbiased):
      return draw(seed)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    (eps_a, w_a), (eps_b, w_b) = draw(seeds[0]), draw(seeds[1])
    return tf.concat([eps_a, eps_b], 0), None if w_a is None else tf.concat([w_a, w_b], 0)

  def residual_loss(self, theta, state, eps, weights=None, unbiased=None):
    """Weighted mean squared residuals: scalar loss and `[n_residuals]` mean squares, and
    with `level_states` > 1 the level term `[n_policies]` (else None).

    With `unbiased`, the square is the product of the residuals of two independent sets of
    shocks: its expectation is the squared residual itself, where the square of one noisy
    residual adds the noise's variance, which depends on the network and so biases the fit.
    """
    std = self.economy.residual_scale(theta)                           # [batch]
    today, tomorrow = self.economy.policies(self.policy.at(theta), state, theta, eps)
    if self.unbiased if unbiased is None else unbiased:
      halves = lambda x: [None, None] if x is None else tf.split(x, 2)
      (a, level_a), (b, level_b) = [
          self.weighted_residuals(theta, state, std, e, today, t, w)
          for e, t, w in zip(tf.split(eps, 2), tf.split(tomorrow, 2), halves(weights))]
      mse = tf.reduce_mean(a * b, axis=0)
      level = None if level_a is None else tf.reduce_mean(level_a * level_b, axis=0)
    else:
      residuals, level = self.weighted_residuals(theta, state, std, eps, today, tomorrow,
                                                 weights)
      mse = tf.reduce_mean(tf.square(residuals), axis=0)
      level = None if level is None else tf.reduce_mean(tf.square(level), axis=0)
    loss = tf.reduce_sum(self.loss_weights * mse)
    if level is not None:
      loss += self.level_weight * tf.reduce_sum(self.loss_weights * level)
    return loss, mse, level

  def weighted_residuals(self, theta, state, std, eps, today, tomorrow, weights=None):
    """Residuals `[batch, n_res]` as the weighting measures them, and the theta groups' level
    errors `[batch / level_states, n_pol]` (None with `level_states` 1)."""
    economy = self.economy
    residuals = economy.equilibrium(state, theta, eps, today, tomorrow, weights)  # [batch, n_res]
    # Residuals are in state units; measured in their natural scale (ergodic std) every theta
    # in the box counts alike, and the loss stays far above Adam's epsilon as training converges.
    if self.weighting != "none":
      residuals = residuals / std[:, None]
    level = None
    if self.weighting in ("newton", "relative"):
      if self.level_states > 1:
        level = self.level_errors(theta, state, eps, today, tomorrow, weights, residuals)
      jacobian = self.jacobian(theta, state, eps, today, tomorrow, weights, economy.error_shape,
                               std)
      residuals = tf.linalg.solve(jacobian, residuals[..., None])[..., 0]
    if self.weighting == "relative":
      size = tf.stop_gradient(tf.maximum(
          economy.relative_size(self.policy, theta, std), RELATIVE_FLOOR))  # [batch, n_pol]
      residuals = residuals / size
      if level is not None:
        level = level / size[::self.level_states]
    return residuals, level

  def level_errors(self, theta, state, eps, today, tomorrow, weights, residuals):
    """Each theta group's persistent level error `[batch / level_states, n_pol]` (in
    `residual_scale`): the group's mean residual `[n_res]` solved against its mean response to a
    policy shifted by the same amount today and tomorrow.

    A policy error that persists moves the residuals far less than one made today alone (the
    NKPC by 1 - beta of an inflation level error), and time iteration's Newton step sees most
    of it as an error of another policy. Averaged over a theta's states the residuals keep
    mostly the persistent part, and the level Jacobian attributes it right (on rank_zlb the
    errors so implied correlate 0.93 with the true mean inflation error per theta;
    BUILD_NOTES.md, "rank_zlb")."""
    group = lambda x: tf.reduce_mean(
        tf.reshape(x, tf.concat([[-1, self.level_states], tf.shape(x)[1:]], 0)), axis=1)
    jacobian = self.jacobian(theta, state, eps, today, tomorrow, weights, "level", None)
    return tf.linalg.solve(group(jacobian), group(residuals)[..., None])[..., 0]

  def jacobian(self, theta, state, eps, today, tomorrow, weights, shape, std):
    """Response `[batch, n_res, n_pol]` of the residuals to a policy error of `shape`, held
    constant for the gradient.

    Solving `J e = r` point by point (a Newton step) maps residuals to the policy errors (in
    `residual_scale`) that cause them, undoing the conditioning of the equilibrium conditions,
    which varies by orders of magnitude across the box and hides some error directions from a
    plain residual loss. Shapes: "proportional" to the (one) state, `e * state / std`, taken at one
    ergodic std (at the point's own state it would vanish with the state); a "level" shift `e`
    today and tomorrow; or an error `e` "today" alone, tomorrow's policy held (time iteration's
    Newton step). The economy's `error_shape` is the one its residuals are mapped with.
    """
    economy = self.economy
    if shape == "level" and economy.endogenous_states:
      return self.persistent_jacobian(theta, state, eps, weights)
    z_today = tf.ones_like(today[:, 0])                                # [batch]
    if shape == "proportional":                                         # one state (__init__)
      z_next = economy.step(std[:, None], theta, eps, None)[..., 0] / std  # [mc, batch]
    elif shape == "level":
      z_next = tf.ones_like(eps[..., 0])
    else:                                                               # "today"
      z_next = tf.zeros_like(eps[..., 0])
    today, tomorrow = tf.stop_gradient(today), tf.stop_gradient(tomorrow)
    columns = []
    for j in range(len(economy.policy_names)):
      unit = tf.one_hot(j, len(economy.policy_names))
      with tf.autodiff.ForwardAccumulator(
          primals=(today, tomorrow),
          tangents=(z_today[:, None] * unit, z_next[..., None] * unit)) as acc:
        moved = economy.equilibrium(state, theta, eps, today, tomorrow, weights)
      columns.append(acc.jvp(moved))                                   # [batch, n_res]
    return tf.stop_gradient(tf.stack(columns, axis=2))                 # [batch, n_res, n_pol]

  def persistent_jacobian(self, theta, state, eps, weights):
    """The "level" Jacobian `[batch, n_res, n_pol]` where tomorrow's states depend on today's
    policies: the residuals' response to the whole policy function shifted by a constant, so
    tomorrow's endogenous states move with today's shifted policies and tomorrow's policies
    move along them, as the network's do. Held fixed, an endogenous state's part of the
    persistent response is lost, and the Jacobian can turn singular inside the box (an inertial
    rule: BUILD_NOTES.md, "Bring your own model"); the level term then divides by zero. Held
    constant for the gradient, like `jacobian`."""
    economy, at = self.economy, self.policy.at(theta)
    n_pol = len(economy.policy_names)
    columns = []
    for j in range(n_pol):
      shift = tf.zeros([n_pol])
      with tf.autodiff.ForwardAccumulator(primals=shift,
                                          tangents=tf.one_hot(j, n_pol)) as acc:
        today, tomorrow = economy.policies(lambda s, t: at(s, t) + shift, state, theta, eps)
        moved = economy.equilibrium(state, theta, eps, today, tomorrow, weights)
      columns.append(acc.jvp(moved))                                   # [batch, n_res]
    return tf.stop_gradient(tf.stack(columns, axis=2))

  def probe_loss(self):
    """The loss on a fixed fresh batch, leaving the regime's state alone (a reference level).

    Always the plain square (one set of shocks): the unbiased product can be negative, and the
    divergence checks compare ratios of this level."""
    seeds = tf.random.experimental.stateless_split(tf.constant([self.seed, 3], tf.int32), 3)
    theta, state = self.draw_points(seeds[:2])
    eps, weights = self.shocks(seeds[2], unbiased=False)
    return float(self.residual_loss(theta, state, eps, weights, unbiased=False)[0])

  def loss_terms(self, step, seeds):
    """This step's loss, its `[n_policies]` (or `[n_residuals]`) mean squares and the level
    term (or None), from four stateless `seeds`."""
    theta, state = self.points(step, seeds[:3])
    eps, weights = self.shocks(seeds[3])                                # [mc, batch, n_shock]
    return self.residual_loss(theta, state, eps, weights)

  def train_step(self, data):
    step = tf.convert_to_tensor(self.optimizer.iterations)
    seeds = self.step_seeds(step, 4)
    with tf.GradientTape() as tape:
      loss, mse, level = self.loss_terms(step, seeds)
      if self.replicas > 1:
        # Equal per-replica batches: the global mean loss is the replicas' mean loss.
        share = loss / self.replicas
    grads = tape.gradient(share if self.replicas > 1 else loss, self.trainable_variables)
    if self.replicas > 1:
      grads = self.global_gradient_share(grads)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    self.trackers[0].update_state(loss)
    for tracker, (_, columns) in zip(self.trackers[1:], self.economy.groups("policies")):
      tracker.update_state(tf.reduce_mean(tf.gather(mse, columns)))
    if level is not None:
      self.trackers[-1].update_state(tf.reduce_sum(level))
    results = {m.name: m.result() for m in self.trackers}
    if self.multi_worker:
      # Across workers Keras averages the replicas' results with `strategy.reduce(MEAN,
      # axis=0)`, which needs an axis (on one machine it averages a stack: scalars stay).
      results = {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results

  def global_gradient_share(self, grads):
    """This replica's equal share of the gradient of the global mean loss, from `grads`, its
    gradient of `loss / replicas`.

    The sum of the replicas' `grads` is the global gradient. Keras would clip each replica's
    gradient before its own all-reduce, a clip of the wrong vector; so the sum is taken here
    and each replica hands the optimiser `1 / replicas` of it, which the optimiser (built with
    `global_clipnorm / replicas`, see `training.build_regime`) clips exactly as one device
    clips the whole, and sums back to the clipped global gradient.
    """
    grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    return [g / self.replicas for g in grads]


class Fresh(Regime):
  """New theta, ergodic state and shocks at every gradient step (seed: `train_simple!`)."""

  def points(self, step, seeds):
    return self.draw_points(seeds)


class Cached(Regime):
  """A fixed pool of `pool` (theta, state) draws, cycled in order; shocks stay fresh."""

  def __init__(self, policy, *, pool=10_000, **kwargs):
    super().__init__(policy, **kwargs)
    if pool < self.batch or pool % self.level_states:
      raise UserError(f"pool ({pool}) must be at least batch ({self.batch}) and a multiple of "
                      f"level_states ({self.level_states})")
    self.pool = pool
    seeds = tf.random.experimental.stateless_split(tf.constant([self.seed, 1], tf.int32), 2)
    theta = self.draw_theta(pool, seeds[0])
    self.pool_theta = self.held(theta, "pool_theta")                       # [pool, P]
    self.pool_state = self.held(self.draw_state(theta, seeds[1]), "pool_state")  # [pool, n_state]

  def points(self, step, seeds):
    # The replicas of one step take consecutive slices of the pool.
    start = (tf.cast(step, tf.int32) * self.replicas + self.replica_id()) * self.batch
    idx = tf.math.floormod(start + tf.range(self.batch), self.pool)
    return tf.gather(self.pool_theta, idx), tf.gather(self.pool_state, idx)


class Persistent(Regime):
  """A batch held in variables between gradient steps, renewed at the start of each iteration
  (every `internal` gradient steps); subclasses say how it is renewed.

  Under a strategy each replica holds its own batch, on its own device: the variables are
  synchronised on read, so a replica's writes stay local and no points cross devices. A
  checkpoint stores the first replica's batch (what a read outside the replicas returns), and a
  restore gives it to every replica until the next renewal: exact with one replica.
  """

  def __init__(self, policy, *, internal=5, **kwargs):
    super().__init__(policy, **kwargs)
    if internal < 1:
      raise UserError(f"internal must be >= 1, got {internal}")
    self.internal = internal
    # One draw of the global batch, of which each replica keeps its own slice.
    seeds = tf.random.experimental.stateless_split(tf.constant([self.seed, 2], tf.int32), 2)
    theta = self.draw_theta(self.batch * self.replicas, seeds[0])
    state = self.draw_state(theta, seeds[1])
    self.theta = self.per_replica_variable((self.batch, *theta.shape[1:]), "theta")
    # The states are held flat, `[batch * n_state]` (row-major: point by point), and read as
    # `[batch, n_state]` (`state_rows`). With one state that is exactly the `[batch]` graph of
    # the regime before states had a column axis. A `[batch, 1]` variable changes how XLA moves
    # reshapes and CSEs `Stepping.renew` into its fused kernel, and the CPU backend (which always
    # allows FMA contraction) then fuses the other multiply of the first AR(1) step's
    # `rho * state + s * eps`: 1 ulp, and `stepping` runs no longer bitwise those of before
    # (BUILD_NOTES, "Design").
    self.state = self.per_replica_variable((self.batch * self.economy.n_state,), "state")

    def keep_slice():
      rows = tf.range(self.batch) + self.replica_id() * self.batch
      self.theta.assign(tf.gather(theta, rows))
      self.state.assign(tf.reshape(tf.gather(state, rows), [-1]))
    tf.distribute.get_strategy().run(tf.function(keep_slice))  # eager `run` warns of overhead

  def per_replica_variable(self, shape, name):
    """A non-trainable float32 variable of `shape` local to each replica."""
    return keras.Variable(initializer="zeros", shape=shape, trainable=False,
                          synchronization="on_read", aggregation="only_first_replica", name=name)

  def state_rows(self, flat):
    """Flat states `[batch * n_state]` as `[batch, n_state]`."""
    return tf.reshape(flat, [self.batch, self.economy.n_state])

  def renew(self, iteration, seeds):
    raise NotImplementedError

  def points(self, step, seeds):
    step = tf.cast(step, tf.int64)
    new_theta, new_state = self.renew(step // self.internal, seeds)
    # Branch-free so the step stays one XLA cluster: renewing costs O(batch), the step O(net).
    renew = tf.equal(step % self.internal, 0)
    self.theta.assign(tf.where(renew, new_theta, self.theta))
    self.state.assign(tf.where(renew, tf.reshape(new_state, [-1]), self.state))
    return tf.convert_to_tensor(self.theta), self.state_rows(tf.convert_to_tensor(self.state))


class Internal(Persistent):
  """Fresh draws every iteration, `internal` gradient steps on them (seed:
  `train_simple_internal!`)."""

  def renew(self, iteration, seeds):
    return self.draw_points(seeds)


class Stepping(Persistent):
  """KMR's regime: theta redrawn every `redraw_every` iterations, the state advanced `num_steps`
  AR(1) steps between iterations, `internal` gradient steps per iteration."""

  def __init__(self, policy, *, num_steps=10, redraw_every=1, **kwargs):
    super().__init__(policy, **kwargs)
    if num_steps < 0 or redraw_every < 1:
      raise UserError("num_steps must be >= 0 and redraw_every >= 1")
    if self.state_scale != 1.0:
      raise UserError("state_scale is for the regimes that draw states; stepping simulates "
                      "them from their ergodic law")
    self.num_steps, self.redraw_every = num_steps, redraw_every

  def renew(self, iteration, seeds):
    theta, state = tf.convert_to_tensor(self.theta), tf.convert_to_tensor(self.state)
    redraw = tf.equal(iteration % self.redraw_every, 0)
    new_theta = tf.where(redraw, self.draw_theta(self.batch, seeds[0]), theta)
    # Flat `[batch * n_state]` throughout, `[batch, n_state]` only into `step` (see `__init__`
    # of `Persistent`: with one state, the graph of the `[batch]` states before).
    flat = lambda x: tf.reshape(x, [-1])
    economy = self.economy
    # Keep each point's position in its ergodic distribution when its theta changes: a state
    # carried over raw from a theta with a 20x larger ergodic scale would sit 20 std out.
    mean, new_mean = economy.state_mean(theta), economy.state_mean(new_theta)
    if mean is not None:
      state = state - flat(mean)
    state = state * flat(economy.ergodic_std(new_theta)) / flat(economy.ergodic_std(theta))
    if new_mean is not None:
      state = state + flat(new_mean)
    n_shock = economy.n_shock
    # Drawn flat (`Economy.draw_state` says why).
    eps = tf.random.stateless_normal([self.num_steps, self.batch * n_shock], seed=seeds[1])
    # An endogenous state moves with the network's own policy, held fixed for the gradient.
    at = self.policy.at(new_theta)
    policy = lambda s, t: tf.stop_gradient(at(s, t))
    for t in range(self.num_steps):
      state = flat(economy.next_state(policy, self.state_rows(state), new_theta,
                                      tf.reshape(eps[t], [self.batch, n_shock])))
    return new_theta, self.state_rows(state)                           # [batch, n_state]

  def points(self, step, seeds):
    if not self.economy.endogenous_states:
      return super().points(step, seeds)
    # Renewing calls the network `num_steps` times: only where it is used. The points are data,
    # not a path of the gradient.
    step = tf.cast(step, tf.int64)
    new_theta, new_state = tf.nest.map_structure(tf.stop_gradient, tf.cond(
        tf.equal(step % self.internal, 0), lambda: self.renew(step // self.internal, seeds),
        lambda: (tf.convert_to_tensor(self.theta), self.state_rows(
            tf.convert_to_tensor(self.state)))))
    self.theta.assign(new_theta)
    self.state.assign(tf.reshape(new_state, [-1]))
    return new_theta, new_state


class Distill(Regime):
  """Regression on the economy's reference solution (`Economy.training_reference`) at a pool
  of `thetas` draws of the training prior, `DISTILL_POINTS` states each: each step takes
  `batch` of those (theta, state) points, and the loss is the squared error in the accuracy
  metric's units (% of the reference's own scale at that theta: `Reference.scale`).

  Where the residual loss mis-ranks approximate policies (rank_zlb: it trades errors the
  metric counts for ones it does not see; BUILD_NOTES.md, "rank_zlb"), fitting the reference
  reaches the bar; an economy without a reference cannot use it. The reference is solved once,
  when the regime is built (again on a restart), and read at the pool's states there: the
  states are uniform on +-`DISTILL_SPAN` in the whitened coordinates of the states' ergodic law
  (`Economy.ergodic_state`; with one state, +-3 ergodic std), so correlated states are drawn
  where the economy goes, not in the corners of a box.
  """

  def __init__(self, policy, *, thetas=4000, **kwargs):
    super().__init__(policy, **kwargs)
    economy = self.economy
    if thetas < 1:
      raise UserError(f"the distill regime needs at least one theta, got {thetas}")
    seed = tf.constant([self.seed, 4], tf.int32)
    theta = economy.draw_theta(thetas, seed).numpy().astype(np.float64)     # [n, P]
    try:
      solved = economy.training_reference(theta, progress=True)
    except NotImplementedError:
      raise UserError(f"the distill regime fits the economy's reference solution, and economy "
                      f"{economy.name!r} has none") from None
    keep = solved.valid
    if not keep.any():
      raise UserError(f"the reference found no solution at any of the {thetas} thetas")
    n, S = len(theta), economy.n_state
    z = tf.random.stateless_uniform([n, DISTILL_POINTS, S], tf.constant([self.seed, 5], tf.int32),
                                    -DISTILL_SPAN, DISTILL_SPAN, tf.float64)
    # The ergodic law is normal, so `ergodic_state` is affine in z: its offset and columns
    # from S + 1 calls on the n thetas, not one perturbation per point.
    t = tf.constant(theta)
    offset = economy.ergodic_state(t, tf.zeros([n, S], tf.float64))          # [n, S]
    columns = tf.stack([economy.ergodic_state(t, tf.one_hot(tf.fill([n], k), S, dtype=tf.float64))
                        - offset for k in range(S)], axis=-1)                 # [n, S, S]
    state = (offset[:, None, :] + tf.einsum("nsk,nmk->nms", columns, z)).numpy()  # [n, M, S]
    target = solved.policies(state)                                           # [n, M, n_pol]
    self.n_pool = int(keep.sum())
    self.pool_theta = self.held(theta[keep], "pool_theta")                   # [n, P]
    self.pool_state = self.held(state[keep].reshape(-1, S), "pool_state")    # [n * M, S]
    self.pool_target = self.held(target[keep].reshape(-1, target.shape[-1]), "pool_target")
    self.pool_scale = self.held(solved.scale()[keep], "pool_scale")          # [n, n_pol]
    # The network's input and output scales at the pool's thetas, computed once: for an
    # economy whose scales come from its perturbation, solving it on every step's batch would
    # cost more than the step.
    self.pool_net_scales = [
        self.held(s, name) for s, name in zip(
            economy.scales(tf.constant(theta[keep], tf.float32)), ("pool_std", "pool_policy_std"))]

  def examples(self, seeds):
    """This step's `theta [batch, P]`, `state [batch, n_state]`, reference `target
    [batch, n_pol]`, the metric's `scale [batch, n_pol]` there and the network's scales
    (`Economy.scales`), from stateless `seeds`."""
    point = tf.random.stateless_uniform([self.batch], seeds[0], 0,
                                        self.n_pool * DISTILL_POINTS, tf.int32)
    row = point // DISTILL_POINTS
    return (tf.gather(self.pool_theta, row), tf.gather(self.pool_state, point),
            tf.gather(self.pool_target, point), tf.gather(self.pool_scale, row),
            [tf.gather(s, row) for s in self.pool_net_scales])

  def loss_terms(self, step, seeds):
    theta, state, target, scale, net_scales = self.examples(seeds)
    error = 100.0 * (self.policy(state, theta, net_scales) - target) / scale   # [batch, n_pol]
    mse = tf.reduce_mean(tf.square(error), axis=0)                     # [n_pol]
    return tf.reduce_sum(mse), mse, None

  def probe_loss(self):
    seeds = tf.random.experimental.stateless_split(tf.constant([self.seed, 3], tf.int32), 4)
    return float(self.loss_terms(0, seeds)[0])


# The distill regime's states: DISTILL_POINTS per pool theta, uniform on +-DISTILL_SPAN whitened
# ergodic std (the metric's one-state levels span +-2.5; its several-state draws are ergodic).
DISTILL_SPAN = 3.0
DISTILL_POINTS = 512


def build(regime, policy, **options):
  """A regime by name; `options` are the constructor arguments (unused ones are an error)."""
  classes = {"fresh": Fresh, "cached": Cached, "internal": Internal, "stepping": Stepping,
             "distill": Distill}
  if regime not in classes:
    raise UserError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
  return classes[regime](policy, **options)
