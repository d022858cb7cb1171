"""The lecture's burglary example as a readable report.

"I'm at work, neighbor John calls to say my alarm is ringing, but neighbor Mary doesn't call. Sometimes
it's set off by minor earthquakes. Is there a burglar?" (Lecture 7.2; CPTs from Russell & Norvig.)

    python -m experiments.burglary [--out runs/burglary]

Prints the variables and CPTs, the full 5-D joint tensor and one joint probability, P(Burglary | John
calls, Mary does not) by explicit marginalisation of the joint and by `bn.query`, every posterior
marginal, and the most probable explanation; writes results.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from gm import bn
from experiments._common import write_results

NAMES = ("Burglary", "Earthquake", "Alarm", "JohnCalls", "MaryCalls")


def burglary_network() -> bn.BayesNet:
    """The five-variable alarm network of the lecture (Russell & Norvig's numbers)."""
    yes_no = ["no", "yes"]
    return bn.BayesNet.from_dict(
        states={name: yes_no for name in NAMES},
        parents={"Alarm": ["Burglary", "Earthquake"], "JohnCalls": ["Alarm"], "MaryCalls": ["Alarm"]},
        cpts={
            "Burglary": [0.999, 0.001],
            "Earthquake": [0.998, 0.002],
            # Alarm[b, e] = P(Alarm | Burglary=b, Earthquake=e)
            "Alarm": [[[0.999, 0.001], [0.71, 0.29]], [[0.06, 0.94], [0.05, 0.95]]],
            "JohnCalls": [[0.95, 0.05], [0.10, 0.90]],
            "MaryCalls": [[0.99, 0.01], [0.30, 0.70]],
        },
    )


def joint_tensor(net: bn.BayesNet) -> np.ndarray:
    """The 5-D joint P(B, E, A, J, M) as a tensor, from the chain rule over the graph."""
    every = jnp.array(list(itertools.product(*(range(c) for c in net.cards))), dtype=jnp.int32)
    log_p = jax.jit(jax.vmap(bn.log_prob, in_axes=(None, 0)))(net, every)
    return np.exp(np.asarray(log_p, dtype=np.float64)).reshape(net.cards)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/burglary")
    parser.add_argument("--quick", action="store_true", help="same report (it is already fast)")
    args = parser.parse_args(argv)
    net = burglary_network()

    print("Variables and CPTs (child axis last)")
    for name in net.names:
        parents = net.parent_names(name)
        given = f" | {', '.join(parents)}" if parents else ""
        print(f"  P({name}{given}) =\n    " + np.array2string(np.asarray(net.cpt(name)), prefix="    "))

    joint = joint_tensor(net)
    print(f"\nThe joint is a {joint.ndim}-D tensor of shape {joint.shape}; it sums to {joint.sum():.6f}.")
    x = net.evidence({"Burglary": "no", "Earthquake": "no", "Alarm": "yes", "JohnCalls": "yes", "MaryCalls": "yes"})
    p_x = float(jnp.exp(bn.log_prob(net, x)))
    print(f"P(B=no, E=no, A=yes, J=yes, M=yes) = {p_x:.6g} (one entry of the tensor: {joint[tuple(x)]:.6g})")

    # P(B | J=yes, M=no) by marginalising the joint: sum out E and A, then normalise.
    b_j_m = joint[:, :, :, 1, 0].sum(axis=(1, 2))
    by_hand = b_j_m / b_j_m.sum()
    evidence = net.evidence({"JohnCalls": "yes", "MaryCalls": "no"})
    by_query = np.asarray(jax.jit(bn.query, static_argnums=1)(net, ("Burglary",), evidence))
    print("\nP(Burglary | JohnCalls=yes, MaryCalls=no)")
    print(f"  by marginalising the joint: {by_hand.round(6)}")
    print(f"  by bn.query:                {by_query.round(6)}")
    evidence_both = net.evidence({"JohnCalls": "yes", "MaryCalls": "yes"})
    p_both = float(bn.query(net, ["Burglary"], evidence_both)[1])
    print(f"  (and with both calling, P(Burglary=yes | J, M) = {p_both:.3f}; the textbook's 0.284)")

    post = jax.jit(bn.marginals)(net, evidence)
    print("\nEvery posterior marginal given J=yes, M=no (one gradient pass):")
    for name in net.names:
        print(f"  {name:11s} {np.asarray(post[name]).round(5)}")
    best = bn.mpe(net, evidence)  # gm.types.MPE(states, log_prob = log P(x*, e))
    explanation = net.assignment(best.states)
    p_mpe = float(jnp.exp(best.log_prob - bn.log_evidence(net, evidence)))
    print(f"\nMost probable explanation: {explanation}  (P(x | e) = {p_mpe:.4f})")

    results = {
        "p_joint_assignment": p_x,
        "p_burglary_given_j_not_m": {"marginalised": by_hand.tolist(), "query": by_query.tolist()},
        "p_burglary_given_j_m": p_both,
        "marginals": {k: np.asarray(v).tolist() for k, v in post.items()},
        "mpe": explanation,
    }
    os.makedirs(args.out, exist_ok=True)
    write_results(os.path.join(args.out, "results.json"), results)
    print(f"\nwrote {os.path.join(args.out, 'results.json')}")
    return results


if __name__ == "__main__":
    main()
