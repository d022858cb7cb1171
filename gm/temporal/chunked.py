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

With all K lanes to the chunks' end the work grows about (K + 1)x against the sequential pass, but every
step runs as a wide product over C lanes instead of T tiny steps. On long sequences at K > 4 the lanes
stop once they coalesce (a chain forgets its start: after some tens of steps every lane of a chunk holds
the same normalised message to float32 rounding) and one lane per chunk carries on, so step 1 costs
about one more forward pass (`transfer_operators`, ``ChunkPlan.coalesce``). The incoming messages carry
the rounding of the combine (about 1e-7 relative per chunk) or of the coalesced lanes (2^-20), which the
chain's forgetting does not let grow.

Length: about 300 lines: the operators, the plan and the two boundary loops; the reruns are the
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

__all__ = ["ChunkPlan", "Boundaries", "TransferOperators", "boundary_messages", "chunk_plan", "lane_budget",
           "transfer_operators"]


# The K lanes of a chunk have coalesced when, in every state, the largest and smallest of their normalised
# messages differ by at most this share of the largest (about 8 float32 roundings).
COALESCE_TOL = 2.0**-20


class ChunkPlan(NamedTuple):
    """How T steps are cut: ``num_chunks`` C chunks of ``chunk_length`` L steps, C L >= T (static ints), and
    whether the lanes of `transfer_operators` stop once they coalesce (``coalesce``, static)."""

    num_chunks: int
    chunk_length: int
    coalesce: bool = True


class TransferOperators(NamedTuple):
    """Each chunk's transfer operator M_c (row i: the chunk's un-normalised forward message started from
    state i before its first transition), as ``M_c[i, :] = kappa_c exp(log_weight[c, i]) columns[:, c, i]``.

    Attributes:
        columns: f32[K, C, K] each lane's normalised message (its column over the first axis sums to one).
            Chunk 0's lanes start from ``initial`` instead (all K alike): ``columns[:, 0, 0]`` is the
            filtered message at chunk 0's last step.
        log_weight: f32[C, K] log w_c(i), relative within a chunk (-inf: the chunk's evidence is
            impossible from state i).
        lane_steps: int32[] the steps the K lanes of every chunk ran before they coalesced (see
            `transfer_operators`); L when they ran to the chunks' end.
        exact: bool[] whether these are the operators (False: the lanes neither coalesced nor reached the
            end within ``max_lane_steps``, and ``columns`` are the lanes' messages where they stopped).
    """

    columns: jax.Array
    log_weight: jax.Array
    lane_steps: jax.Array
    exact: jax.Array


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
    """The chunks for T steps of K states.

    Two regimes, measured on a 2-core CPU (README, issue 20, coalescing lanes), where the cost is per-step
    overhead (a loop step of a few small kernels) against multiply-adds:

    - K <= 4, or T < 8,192: the K lanes run to the chunks' end (``coalesce`` False). The work is
      (K + 1) T K^2 whatever the cut, so the loops are made short: chunks of 16 steps, as many as keep
      C <= 2,048 and the lanes (C K^2 floats) within 512 KiB.
    - otherwise the lanes stop once they coalesce, after some tens of steps on a mixing chain, and the
      rest runs one lane per chunk: chunks of about 3 sqrt(T) steps (at least 64), which balances the
      loops' L steps against the C chunks' K-lane and boundary work, with C K^2 within 512 KiB (K = 16,
      T = 10^4 / 10^5: L = 256 / 1024 best of 16 to 2,048; T = 10^6: C = 128 / 512 / 2,000 within 10%).

    Then L = ceil(T / C) and C = ceil(T / L), so fewer than C steps are padding. ``chunk_length``
    overrides L (the regime stays T's and K's).

    Examples:
        >>> chunk_plan(1_000_000, 16)
        ChunkPlan(num_chunks=334, chunk_length=2995, coalesce=True)
        >>> chunk_plan(10_000, 4)
        ChunkPlan(num_chunks=625, chunk_length=16, coalesce=False)
    """
    if num_steps < 1:
        raise ValueError(f"num_steps = {num_steps}: the chunked passes need at least one step")
    coalesce = num_states > 4 and num_steps >= 8192
    max_chunks = max(1, 2**17 // num_states**2)
    if chunk_length is None:
        if coalesce:
            chunk_length = max(64, math.ceil(3 * math.sqrt(num_steps)))
        else:
            chunk_length = 16
            max_chunks = min(max_chunks, 2048)
        chunk_length = max(chunk_length, -(-num_steps // max_chunks))
    if chunk_length < 1:
        raise ValueError(f"chunk_length = {chunk_length} must be at least 1")
    chunks = -(-num_steps // min(chunk_length, num_steps))
    return ChunkPlan(chunks, -(-num_steps // chunks), coalesce)


def lane_budget(plan: ChunkPlan, num_states: int) -> int:
    """The K-lane steps ``method="auto"`` allows before it gives up on the chunks (`transfer_operators`'
    ``max_lane_steps``): the whole chunk up to K = 16; above, a 2,048 / K^3 share of it, at least 32 steps.

    A K-lane step costs C K^3 multiply-adds against the sequential pass's K^2 a step, but the sequential
    pass's steps cost about 1 µs each whatever K up to 64 (measured, 2-core CPU). So up to K = 16 even
    lanes that never coalesce cost about what the sequential pass does (0.8x to 0.9x of its speed on
    sticky chains with weak evidence, 1.5x to 4x faster than it on mixing ones); at K = 32 they cost 3x
    to 5x more, and lanes that have not coalesced within the budget belong to a chain that forgets slowly
    (self-transitions 0.9 coalesced in about 100 steps, 0.99 in about 300, a random mixing chain in 15).

    Examples:
        >>> lane_budget(chunk_plan(1_000_000, 16), 16)
        2995
        >>> lane_budget(chunk_plan(1_000_000, 32), 32)
        488
    """
    L = plan.chunk_length
    return L if num_states <= 16 else min(L, max(32, L * 2048 // num_states**3))


def transfer_operators(initial, transition, lik_at: BatchStepLikelihood, chunk_length: int, *,
                       coalesce_tol: float | None = COALESCE_TOL,
                       max_lane_steps: int | None = None) -> TransferOperators:
    """Step 1: every chunk's transfer operator, from the K unit vectors run through its steps at once.

    The lanes of a chunk forget their start as the chain mixes: once in every chunk the normalised
    messages of all its possible lanes agree to ``coalesce_tol`` (relative, in every state), the chunk's
    operator so far has rank one to float32 rounding, and so has the whole chunk's (positive maps only
    bring two messages closer: Birkhoff's contraction). The K lanes stop there and one lane per chunk
    carries the common message to the chunks' end (K^2 instead of K^3 multiply-adds a step), the lanes'
    relative weights unchanged (the rest of the chunk multiplies them alike). A chain that forgets slowly
    (nearly reducible, or sticky with uninformative evidence) keeps all K lanes to the end.

    Args:
        initial: f32[K]; transition: f32[K, K];
        lik_at: ``t -> ScaledLikelihood(lik f32[K, C], log_scale f32[C])`` step t of every chunk
            (``common.batch_array_likelihood`` of the [C, L, K] chunks); chunk_length: L (static);
        coalesce_tol: the lanes' agreement that ends the K-lane loop (None: run the K lanes to the end);
        max_lane_steps: at most this many K-lane steps (static; None: L). Lanes stopped by it without
            coalescing leave ``exact`` False, and the caller takes another road (`gm.temporal.hmm`'s
            ``method="auto"``: the sequential pass).

    Returns:
        `TransferOperators` (columns f32[K, C, K], log_weight f32[C, K], lane_steps, exact). A NaN in
        ``initial`` (the invalid-model marker) propagates to chunk 0's columns, and its lanes never
        coalesce.
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

    if chunk_length == 1 or (coalesce_tol is None and max_lane_steps is None):
        if chunk_length > 1:
            carry = loops.fori_loop(1, chunk_length, step, carry)
        a, inv, log_weight, _ = carry
        return TransferOperators(a * inv[None], log_weight, jnp.int32(chunk_length), jnp.bool_(True))

    # The K lanes run until every chunk's lanes have coalesced (`_coalesced`), at most to the chunk's end or
    # ``max_lane_steps``.
    tol = -1.0 if coalesce_tol is None else coalesce_tol  # never coalesced
    stop = chunk_length if max_lane_steps is None else min(max(1, max_lane_steps), chunk_length)

    def lanes_cond(state):
        t, _, done = state
        return (t < stop) & ~done

    def lanes_body(state):
        t, carry, _ = state
        carry = step(t, carry)
        return t + 1, carry, _coalesced(carry, tol)

    t, carry, done = lax.while_loop(lanes_cond, lanes_body, (jnp.int32(1), carry, _coalesced(carry, tol)))
    a, inv, log_weight, _ = carry
    columns = a * inv[None]
    # From there on every lane of a chunk is one message up to its weight, which the rest of the chunk
    # multiplies alike: one lane per chunk f32[K, C] carries on (none when the K lanes reached the end).
    ok = jnp.isfinite(log_weight)[None]  # [1, C, K]: the possible lanes
    rep = jnp.sum(jnp.where(ok, columns, 0.0), axis=2) / jnp.maximum(jnp.sum(ok, axis=2), 1)

    def one_lane(s, msg):
        lik_s, _ = lik_at(s)
        u = jnp.dot(jnp.swapaxes(transition, 0, 1), msg) * lik_s
        z = jnp.sum(u, axis=0)
        return jnp.where(z <= 0, msg, u / jnp.where(z <= 0, 1.0, z))

    rep = lax.fori_loop(jnp.where(done, t, chunk_length), chunk_length, one_lane, rep)
    columns = jnp.where(done & (t < chunk_length), jnp.broadcast_to(rep[:, :, None], columns.shape), columns)
    return TransferOperators(columns, log_weight, t, done | (t == chunk_length))


def _coalesced(carry, tol):
    """Whether in every chunk the normalised messages of all possible lanes agree to ``tol`` relative in
    every state (max over lanes - min <= tol max): the chunk's operator so far has rank one to float
    rounding, and since positive maps only bring messages closer (Birkhoff), so has the whole chunk's."""
    a, inv, log_w, _ = carry
    n = a * inv[None]
    ok = jnp.isfinite(log_w)[None]
    hi = jnp.max(jnp.where(ok, n, -jnp.inf), axis=2)
    lo = jnp.min(jnp.where(ok, n, jnp.inf), axis=2)
    return jnp.all((hi - lo <= tol * hi) | (hi == -jnp.inf))


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
    cols, log_w = operators.columns, operators.log_weight
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
