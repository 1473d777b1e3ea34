"""Training: one compilation per sweep, determinism, divergence, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_gmm import compilation, metrics, programs, subspace, train
from ssl_gmm.mixture import make_mixture


def _grid(anisotropy, dim=8, num_components=3, seed=0):
  anisotropy = jnp.asarray(anisotropy, jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(seed), anisotropy.shape[0])
  build = lambda k, a: make_mixture(k, dim, num_components, a)  # noqa: E731
  mixtures = jax.jit(lambda *a: programs.map_points(build, *a))(
    keys, anisotropy
  )
  return keys, mixtures


def _hyper(n, learning_rate=1e-2, temperature=0.5, p_same=1.0):
  # Strongly typed float32: a weakly typed array is another cache key.
  def full(v):
    return jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n,))

  return train.Hyper(full(learning_rate), full(temperature), full(p_same))


# One method per way of training: contrastive logits, a predictor with an
# EMA target (BYOL), a non-contrastive loss, an MLP encoder.
@pytest.mark.parametrize("method", ["ntxent", "byol", "vicreg", "infonce_mlp"])
def test_one_compilation_for_a_sweep_of_traced_values(method):
  # Recompilation: swept values are traced arrays, so new values of anisotropy,
  # temperature, learning rate and p_same reuse the compiled program.
  keys, mixtures = _grid([1.0, 10.0, 100.0])
  static = dict(method=method, k=2, steps=3, batch=8)
  with compilation.count_compilations() as compiled:
    train.train_grid(keys, keys, mixtures, _hyper(3), **static)
    _, other = _grid([2.0, 20.0, 300.0])
    hyper = _hyper(3, learning_rate=[1e-3, 1e-2, 1e-1], temperature=0.1)
    train.train_grid(
      keys,
      keys,
      other,
      hyper._replace(p_same=jnp.full(3, 0.5, jnp.float32)),
      **static,
    )
  assert compiled["jit(train_grid)"] == 1


def test_identical_seeds_give_identical_results():
  keys, mixtures = _grid([1.0, 100.0])
  run = lambda: train.train_grid(  # noqa: E731
    keys, keys, mixtures, _hyper(2), method="infonce", k=2, steps=20, batch=16
  )
  first, second = run(), run()
  np.testing.assert_array_equal(first.encoder, second.encoder)
  other_keys = jax.random.split(jax.random.PRNGKey(1), 2)
  third = train.train_grid(
    other_keys,
    other_keys,
    mixtures,
    _hyper(2),
    method="infonce",
    k=2,
    steps=20,
    batch=16,
  )
  assert not np.allclose(first.encoder, third.encoder)


def test_jit_and_no_jit_agree():
  keys, mixtures = _grid([10.0])
  one = jax.tree.map(lambda a: a[0], mixtures)
  hyper = jax.tree.map(lambda a: a[0], _hyper(1))
  static = dict(method="ntxent", k=2, steps=2, batch=8)
  jitted = train.train_grid(keys, keys, mixtures, _hyper(1), **static)
  with jax.disable_jit():
    plain = train.train(keys[0], keys[0], one, hyper, **static)
  np.testing.assert_allclose(
    plain.encoder, jitted.encoder[0], rtol=1e-5, atol=1e-6
  )


def test_a_diverging_point_is_flagged_and_the_others_are_not():
  # A learning rate of 1e30 sends the dot-product logits to infinity.
  keys, mixtures = _grid([10.0, 10.0])
  hyper = _hyper(2, learning_rate=[1e-2, 1e30])
  out = train.train_grid(
    keys, keys, mixtures, hyper, method="infonce_dot", k=2, steps=50, batch=16
  )
  np.testing.assert_array_equal(out.diverged, [False, True])
  assert np.all(np.isfinite(out.encoder[0]))


def test_infonce_moves_the_encoder_into_the_fisher_subspace():
  keys, mixtures = _grid([10.0])
  hyper = _hyper(1, learning_rate=3e-2)
  out = train.train_grid(
    keys, keys, mixtures, hyper, method="infonce", k=2, steps=300, batch=128
  )
  with jax.enable_x64(True):
    mixture = jax.tree.map(lambda a: jnp.asarray(a[0], jnp.float64), mixtures)
    basis, _ = subspace.fisher_subspace(
      mixture.means, mixture.cov, mixture.weights
    )
    start = train.init_params(keys[0], 2, 8)["encoder"]
    before = float(metrics.distance(jnp.asarray(start, jnp.float64), basis))
    after = float(
      metrics.distance(jnp.asarray(out.encoder[0], jnp.float64), basis)
    )
  assert before > 0.8  # A random 2-plane in R^8 is far from F.
  assert after < 0.3


def test_byol_steps_against_a_hand_written_loop():
  # Two steps of BYOL (plain sampler) redone by hand: the target starts as
  # the encoder, and after each Adam step becomes
  # decay * target + (1 - decay) * encoder (Grill et al. 2020, eq. 1).
  # The final loss of a 2-step run is the loss of step 1, whose targets
  # come from that updated target.
  keys, mixtures = _grid([20.0])
  mixture = jax.tree.map(lambda a: a[0], mixtures)
  hyper = train.Hyper(*(jnp.float32(v) for v in (5e-2, 0.5, 1.0)))
  k, batch = 2, 16
  trained = jax.jit(
    lambda: train.train(
      keys[0], keys[0], mixture, hyper, method="byol", k=k, steps=2, batch=batch
    )
  )()
  params = train.init_params(keys[0], k, 8, "byol")
  optimizer = optax.adam(5e-2)
  state = optimizer.init(params)

  @jax.jit
  def loss(params, target, t):
    x, x_pos = train.mixture_pairs(
      jax.random.fold_in(keys[0], t), mixture, batch, 1.0
    )
    return train.method_loss(
      {**params, "target": target}, x, x_pos, hyper.temperature, "byol"
    )

  target = params["encoder"]
  grads = jax.grad(loss)(params, target, 0)
  updates, state = optimizer.update(grads, state, params)
  params = optax.apply_updates(params, updates)
  decay = train.EMA_DECAY
  target = decay * target + (1 - decay) * params["encoder"]
  np.testing.assert_allclose(
    trained.final_loss, loss(params, target, 1), rtol=1e-5
  )
  # The target moved: with the encoder itself as target the loss differs.
  assert (
    abs(float(loss(params, params["encoder"], 1)) - trained.final_loss) > 1e-6
  )


@pytest.mark.parametrize(
  "changes, named",
  [
    (dict(method="moco"), "method='moco'"),
    (dict(k=0), "k=0"),
    (dict(k=9), "k=9"),  # > d = 8
    (dict(steps=0), "steps=0"),
    (dict(batch=1), "batch=1"),  # no negative for the contrastive loss
    (dict(sampler="exact"), "sampler='exact'"),
    (dict(method="infonce_mlp", mlp=train.MLPShape(0, 1)), "mlp.width=0"),
    (dict(method="infonce_mlp", mlp=(8, 1)), r"mlp=\(8, 1\)"),  # A tuple.
  ],
)
def test_train_names_a_bad_static_argument(changes, named):
  keys, mixtures = _grid([1.0])
  key, one, hyper = jax.tree.map(lambda a: a[0], (keys, mixtures, _hyper(1)))
  static = dict(method="infonce", k=2, steps=3, batch=8) | changes
  with (
    compilation.count_compilations() as compiled,
    pytest.raises(ValueError, match=f"^{named} is invalid"),
  ):
    train.train(key, key, one, hyper, **static)
  assert not compiled


@pytest.mark.parametrize(
  "changes, named",
  [
    (dict(learning_rate=[1e-2, -0.5]), "learning_rate=-0.5"),
    (dict(temperature=[0.5, 0.0]), "temperature=0.0"),
    (dict(p_same=[1.0, 1.5]), "p_same=1.5"),
  ],
)
def test_train_grid_names_a_bad_stacked_setting(changes, named):
  keys, mixtures = _grid([1.0, 10.0])
  hyper = _hyper(2)._replace(
    **{name: jnp.asarray(v, jnp.float32) for name, v in changes.items()}
  )
  static = dict(method="infonce", k=2, steps=3, batch=8)
  with (
    compilation.count_compilations() as compiled,
    pytest.raises(ValueError, match=f"^{named} is invalid"),
  ):
    train.train_grid(keys, keys, mixtures, hyper, **static)
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    train.train_grid.lower(keys, keys, mixtures, hyper, **static)
  assert not compiled
