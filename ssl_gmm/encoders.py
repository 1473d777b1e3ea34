"""Nonlinear encoders, and what recovering the Fisher subspace means for them.

A linear encoder f(x) = A x keeps exactly the directions of its row space,
so the metrics of ssl_gmm/metrics.py compare that row space with the Fisher
subspace F. A nonlinear encoder has no row space. What plays its part is
the set of input directions the encoder responds to, on the data: the top
eigenvectors of the average Jacobian outer product

  M = E_x[J(x)^T J(x)],   J(x) = df/dx in R^{k x d},

taken over draws x of the data. A direction v with v^T M v = 0 changes no
embedding of any sampled point to first order, so it carries nothing the
encoder uses; the larger v^T M v, the more the embedding moves along v.
`effective_encoder` returns B = diag(sqrt(lambda)) V^T from M's top k
eigenpairs, so that B^T B is the best rank-k part of M, and every metric
of a linear encoder is then taken on B.

Why this definition: for a linear encoder J(x) = A everywhere, M = A^T A,
and B = Q A for an orthogonal Q (polar decomposition), so B has A's row
space, and distance, fisher_ratio and nuisance_share (which depend on A
only through A^T A or its row space) are exactly those of A. The
definition therefore extends the linear metrics rather than replacing
them. It is taken on the encoder's output before any normalisation, as
for the linear encoder's A; a linear probe of the embedding (the
downstream accuracy) measures the rest. A Jacobian average (E[J]) would
not do: a symmetric nonlinearity can average a used direction to zero.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """A multilayer perceptron: `depth` hidden GELU layers, then linear.

  Attributes:
    width: units of every hidden layer.
    depth: number of hidden layers (0 gives a linear map with a bias).
    features: output dimension k.
  """

  width: int
  depth: int
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for _ in range(self.depth):
      x = nn.gelu(nn.Dense(self.width)(x))
    return nn.Dense(self.features)(x)


def jacobian_outer_product(
  fn: Callable[[jax.Array], jax.Array], x: jax.Array
) -> jax.Array:
  """M = mean over rows x_i of J(x_i)^T J(x_i), [d, d], for fn: [d] -> [k]."""
  jacobians = jax.vmap(jax.jacrev(fn))(x)  # [n, k, d]
  return jnp.einsum("nkd,nke->de", jacobians, jacobians) / x.shape[0]


def effective_encoder(
  fn: Callable[[jax.Array], jax.Array], x: jax.Array, k: int
) -> jax.Array:
  """The [k, d] linear encoder B that stands for fn on the data x.

  B = diag(sqrt(lambda)) V^T, with (lambda, V) the top k eigenpairs of the
  Jacobian outer product M of fn over the rows of x ([n, d]); see the
  module docstring for why. Negative eigenvalues from rounding count as 0.
  """
  values, vectors = jnp.linalg.eigh(jacobian_outer_product(fn, x))
  values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k]
  return jnp.sqrt(jnp.maximum(values, 0.0))[:, None] * vectors.T
