"""Dynamic Bayesian networks as 2-slice templates (2-TBN): exact filtering, smoothing and MPE.

    from gm.temporal import dbn
    model = dbn.coupled_hmm(initial_h, initial_v, transition_h, transition_v, emission_x, emission_y)
    post = dbn.smoother(model, evidence)        # evidence int32[T, n_vars], -1 unobserved
    best = dbn.mpe(model, evidence)             # gm.types.MPE(states int32[T, n_vars], log_prob)

The modules, one job each:

* `gm.temporal.dbn.structure`: `Structure`, `DBN`, `from_dict` and the constructors `factorial_hmm`,
  `coupled_hmm`, `boltzmann_zipper`;
* `gm.temporal.dbn.inference`: `log_evidence`, `filter`, `smoother`, `mpe`, `expected_counts` on the
  general contraction engine (plans from ``gm.bn.tensornet``);
* `gm.temporal.dbn.factorial`: the factorial fast path that `smoother` takes for independent chains;
* `gm.temporal.dbn.sampling`: `sample`, `unroll`, `unroll_dict`.

Estimation (EM for every CPT, random initialisation) is in ``gm.learn.dbn``.
"""

from gm.temporal.dbn.factorial import FactorialLayout, factorial_layout
from gm.temporal.dbn.inference import (
    DBNCounts,
    evidence_vectors,
    expected_counts,
    filter,
    log_evidence,
    mpe,
    smoother,
    step_flops,
)
from gm.temporal.dbn.sampling import sample, unroll, unroll_dict
from gm.temporal.dbn.structure import (
    DBN,
    DBNPosterior,
    Structure,
    boltzmann_zipper,
    coupled_hmm,
    factorial_hmm,
    from_dict,
)

__all__ = [
    "DBN",
    "DBNCounts",
    "DBNPosterior",
    "FactorialLayout",
    "Structure",
    "boltzmann_zipper",
    "coupled_hmm",
    "evidence_vectors",
    "expected_counts",
    "factorial_hmm",
    "factorial_layout",
    "filter",
    "from_dict",
    "log_evidence",
    "mpe",
    "sample",
    "smoother",
    "step_flops",
    "unroll",
    "unroll_dict",
]
