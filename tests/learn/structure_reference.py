"""A float64 local score written with explicit loops: the oracle of the structure-learning tests."""

import itertools
import math

import numpy as np


def reference_score(data, cards, child, parents, score, ess=10.0):
    """Float64 local score by explicit loops over parent configurations and child states."""
    data = np.asarray(data)
    r = cards[child]
    configs = list(itertools.product(*[range(cards[p]) for p in parents]))
    q = len(configs)
    n = len(data)
    table = np.zeros((q, r))
    for row in data:
        u = configs.index(tuple(int(row[p]) for p in parents))
        table[u, int(row[child])] += 1
    seen = [u for u in range(q) if table[u].sum() > 0]
    total = 0.0
    if score in ("log_likelihood", "bic", "aic"):
        for u in seen:
            nu = table[u].sum()
            total += sum(c * math.log(c / nu) for c in table[u] if c > 0)
        if score == "bic":
            total -= 0.5 * math.log(n) * q * (r - 1)
        if score == "aic":
            total -= q * (r - 1)
        return total
    if score == "k2":
        for u in seen:
            total += math.lgamma(r) - math.lgamma(table[u].sum() + r)
            total += sum(math.lgamma(c + 1) for c in table[u])
        return total
    q_eff = len(seen) if score == "bds" else q
    a, b = ess / q_eff, ess / (q_eff * r)
    for u in seen:
        total += math.lgamma(a) - math.lgamma(table[u].sum() + a)
        total += sum(math.lgamma(c + b) - math.lgamma(b) for c in table[u])
    return total
