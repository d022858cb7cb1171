"""One long sequence as a batch of chunks: the transfer operators and messages of exact blocked passes.

On one sequence the sequential passes pay a per-step cost (a few kernels and their launch) that a
[K, K] x [K] product cannot hide; a batch of sequences shares it (the batch-minor passes of
``gm.temporal.hmm``). The blocked passes turn one sequence of T steps into a batch: cut it into C chunks
of L steps (T <= C L; the tail padded with log-likelihood 0, which leaves every real step's filtered
message, the backward messages and the log-evidence unchanged, A being row-stochastic), and

1. ``transfer_operators``: for every chunk c the product M_c = prod_{t in c} A diag(p(x_t | ·)) of its
   steps, as the K unit vectors run through the chunk at once: C K lanes of one [K, K] x [K, C K]
   product a step, each lane normalised every step. Row i of M_c is then
   kappa_c w_c(i) N_c[:, i] with N_c's columns summing to one; w_c(i) (kept as a log, relative to the
   best lane of the chunk at each step, so the sum stays small and is Kahan-compensated) is all the
   combine needs, the common factor kappa_c cancels. Each lane's normaliser is applied lazily, in the
   next step's product with the likelihoods.
2. ``boundary_messages``: two short sequential loops over the C chunks (one [K, K] x [K] product each)
   give each chunk's true incoming prediction alpha_{end of c-1} A and its outgoing backward message
   beta_{end of c} (beta_{end of c-1} ∝ M_c beta_{end of c}, beta at the last step all ones).
3. ``gm.temporal.hmm`` reruns every chunk from its incoming prediction as a batch of C sequences (the
   batch-minor forward pass, then the in-place smoothing pass from gamma = alpha ⊙ beta at each chunk's
   last step): the filtered messages, log normalisers and marginals are those of the sequential pass,
   to float32 rounding, and the log-evidence is the compensated sum of the same per-step normalisers.

Work grows about (K + 1)x against the sequential pass (K lanes per chunk in step 1), but every step
runs as a wide product over C lanes instead of T tiny steps. The incoming messages carry the rounding of
the combine (about 1e-7 relative per chunk), which the chain's forgetting does not let grow.

Length: about 200 lines: the operators, the plan and the two boundary loops; the reruns are the
batch-minor passes of ``gm.temporal.hmm``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gm import loops
from gm.temporal.common import BatchStepLikelihood

__all__ = ["ChunkPlan", "Boundaries", "TransferOperators", "boundary_messages", "chunk_plan",
           "transfer_operators"]


class ChunkPlan(NamedTuple):
    """How T steps are cut: ``num_chunks`` C chunks of ``chunk_length`` L steps, C L >= T (static ints)."""

    num_chunks: int
    chunk_length: int


class TransferOperators(NamedTuple):
    """Each chunk's transfer operator M_c (row i: the chunk's un-normalised forward message started from
    state i before its first transition), as ``M_c[i, :] = kappa_c exp(log_weight[c, i]) columns[:, c, i]``.

    Attributes:
        columns: f32[K, C, K] each lane's normalised message (its column over the first axis sums to one).
            Chunk 0's lanes start from ``initial`` instead (all K alike): ``columns[:, 0, 0]`` is the
            filtered message at chunk 0's last step.
        log_weight: f32[C, K] log w_c(i), relative within a chunk (-inf: the chunk's evidence is
            impossible from state i).
    """

    columns: jax.Array
    log_weight: jax.Array


class Boundaries(NamedTuple):
    """The messages at the chunk boundaries.

    Attributes:
        incoming: f32[K, C] each chunk's prediction for its first step (chunk 0: ``initial``;
            chunk c: alpha_{end of c-1} A).
        beta_end: f32[K, C] the backward message at each chunk's last step, normalised (last chunk: ones).
    """

    incoming: jax.Array
    beta_end: jax.Array


def chunk_plan(num_steps: int, num_states: int, *, chunk_length: int | None = None) -> ChunkPlan:
    """The chunks for T steps of K states: as many chunks as keep chunks at least 64 steps long and the
    transfer operators' lanes (C K^2 floats) within 128 KiB, the cache a step works in (measured on a
    2-core CPU: wider lanes cost more per element than the shorter chunks save); then L = ceil(T / C) and
    C = ceil(T / L), so fewer than C steps are padding. ``chunk_length`` overrides L.

    Examples:
        >>> chunk_plan(1_000_000, 16)
        ChunkPlan(num_chunks=128, chunk_length=7813)
        >>> chunk_plan(10_000, 4)
        ChunkPlan(num_chunks=154, chunk_length=65)
    """
    if num_steps < 1:
        raise ValueError(f"num_steps = {num_steps}: the chunked passes need at least one step")
    if chunk_length is None:
        chunks = max(1, min(num_steps // 64, 2**15 // num_states**2))
        chunk_length = -(-num_steps // chunks)
    if chunk_length < 1:
        raise ValueError(f"chunk_length = {chunk_length} must be at least 1")
    chunks = -(-num_steps // min(chunk_length, num_steps))
    return ChunkPlan(chunks, -(-num_steps // chunks))


def transfer_operators(initial, transition, lik_at: BatchStepLikelihood, chunk_length: int) -> TransferOperators:
    """Step 1: every chunk's transfer operator, from the K unit vectors run through its steps at once.

    Args:
        initial: f32[K]; transition: f32[K, K];
        lik_at: ``t -> ScaledLikelihood(lik f32[K, C], log_scale f32[C])`` step t of every chunk
            (``common.batch_array_likelihood`` of the [C, L, K] chunks); chunk_length: L (static).

    Returns:
        `TransferOperators` (columns f32[K, C, K], log_weight f32[C, K]). A NaN in ``initial`` (the
        invalid-model marker) propagates to chunk 0's columns.
    """
    K = initial.shape[0]
    lik0, _ = lik_at(0)
    C, dtype = lik0.shape[1], lik0.dtype
    # lane (c, i) starts from the prediction e_i A (row i of A); chunk 0 from ``initial``
    start = jnp.broadcast_to(jnp.swapaxes(transition, 0, 1)[:, None, :], (K, C, K))
    start = start.at[:, 0, :].set(jnp.broadcast_to(initial[:, None], (K, K)))

    ones = jnp.ones((1, K), dtype)

    # Each lane is normalised lazily: a step's un-normalised message a_t is kept and its normaliser's
    # reciprocal applied in the next step's product with the likelihood (A^T (a / c) = (A^T a) / c per
    # lane), and the normaliser is a [1, K] x [K, C K] product: one matrix product and one fused pass a
    # step instead of three passes (K = 16, C = 500: 1.7x to 2x faster).
    def advance(pred, lik, inv, log_w, comp):
        a = pred * (lik[:, :, None] * inv[None])
        c = jnp.dot(ones, a.reshape(K, C * K)).reshape(C, K)
        best = jnp.max(c, axis=1, keepdims=True)
        term = jnp.log(c / jnp.where(best <= 0, 1.0, best))  # <= 0; -inf where lane i is impossible
        y = term - comp  # Kahan: the weights' sum keeps its rounding error
        total = log_w + y
        comp = jnp.where(jnp.isfinite(total), (total - log_w) - y, 0.0)
        inv = jnp.where(c <= 0, 1.0, 1.0 / c)  # an impossible lane stays zero; a NaN propagates
        return a, inv, total, comp

    zeros = jnp.zeros((C, K), dtype)
    carry = advance(start, lik0, jnp.ones((C, K), dtype), zeros, zeros)

    def step(t, carry):
        a, inv, log_w, comp = carry
        lik_t, _ = lik_at(t)
        pred = jnp.dot(jnp.swapaxes(transition, 0, 1), a.reshape(K, C * K)).reshape(K, C, K)
        return advance(pred, lik_t, inv, log_w, comp)

    if chunk_length > 1:
        carry = loops.fori_loop(1, chunk_length, step, carry)
    a, inv, log_weight, _ = carry
    columns = a * inv[None]
    return TransferOperators(columns, log_weight)


def _weights(log_weight):
    """f32[K]: exp(log_weight - max), zero everywhere where every lane is impossible."""
    top = jnp.max(log_weight)
    return jnp.exp(log_weight - jnp.where(jnp.isfinite(top), top, 0.0))


def boundary_messages(initial, transition, operators: TransferOperators, *, backward: bool = True) -> Boundaries:
    """Step 2: each chunk's incoming prediction (forward, chunk by chunk) and, with ``backward``, the
    backward message at each chunk's end (from the last chunk back), one [K, K] x [K] product a chunk.

    Returns:
        `Boundaries` (incoming f32[K, C], beta_end f32[K, C] or ones when not ``backward``). A chunk whose
        evidence is impossible from the incoming message (p(x) = 0) keeps the message before it: the
        log-evidence of the rerun is then -inf and the rows finite, as in the sequential pass.
    """
    cols, log_w = operators
    K, C, _ = cols.shape
    cols_t = jnp.moveaxis(cols, 1, 0)  # [C, K (state), K (lane)]
    alpha0 = cols[:, 0, 0]

    def forward(alpha, xs):
        n, lw = xs
        u = jnp.dot(n, alpha * _weights(lw))
        z = jnp.sum(u)
        out = jnp.where(z <= 0, alpha, u / jnp.where(z <= 0, 1.0, z))  # NaN propagates
        return out, out

    _, alphas = loops.scan(forward, alpha0, (cols_t[1:], log_w[1:]))  # alpha at the end of chunks 1..C-1
    ends = jnp.concatenate([alpha0[None], alphas])[:-1]  # [C-1, K]: the end of chunks 0..C-2
    incoming = jnp.concatenate([initial[:, None], jnp.dot(ends, transition).T], axis=1)
    ones = jnp.ones((K,), cols.dtype)
    if not backward or C == 1:
        return Boundaries(incoming, jnp.ones((K, C), cols.dtype))

    def back(beta, xs):
        n, lw = xs
        b = _weights(lw) * jnp.dot(beta, n)
        z = jnp.sum(b)
        out = jnp.where(z <= 0, beta, b / jnp.where(z <= 0, 1.0, z))
        return out, out

    _, betas = loops.scan(back, ones / K, (cols_t[1:], log_w[1:]), reverse=True)  # end of chunks 0..C-2
    return Boundaries(incoming, jnp.concatenate([betas, (ones / K)[None]]).T)
