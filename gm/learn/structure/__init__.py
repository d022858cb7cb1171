"""gm.learn.structure: learning the graph of a discrete Bayesian network from complete records.

* scores: `family_scores` (BIC/MDL, AIC, log-likelihood, K2, BDeu, BDs; many families per compiled call),
  `network_score`, `ScoreCache`;
* searches, each returning a `gm.bn.Structure` (fit its CPTs with `gm.learn.mle` / `gm.learn.dirichlet`):
  `hill_climb` / `hill_climb_restarts` (add, delete, reverse; tabu list, white/black lists, max in-degree),
  `exact_search` (dynamic programming over subsets), `chow_liu`, `tan`, `pc` (chi-square / G tests; CPDAG
  and a consistent DAG);
* graph helpers: `dag_to_cpdag`, `shd`, `structure_edges`.

Examples:
    >>> from gm.learn import structure
    >>> result = structure.hill_climb(data, net, score="bdeu")     # data int32[N, n_vars]
    >>> fitted = gm.learn.mle(result.structure, data)
"""

from gm.learn.structure.scores import SCORES, ScoreCache, family_scores, network_score, scores_from_counts

__all__ = ["SCORES", "ScoreCache", "family_scores", "network_score", "scores_from_counts"]
from gm.learn.structure.search import SearchResult
from gm.learn.structure.hill_climb import hill_climb, hill_climb_restarts

__all__ += ["SearchResult", "hill_climb", "hill_climb_restarts"]
from gm.learn.structure.exact import exact_search, exact_search_cost

__all__ += ["exact_search", "exact_search_cost"]
from gm.learn.structure.trees import chow_liu, mutual_information, tan

__all__ += ["chow_liu", "mutual_information", "tan"]
from gm.learn.structure.pc import PCResult, ci_tests, pc

__all__ += ["PCResult", "ci_tests", "pc"]
from gm.learn.structure.search import dag_to_cpdag, shd, structure_edges

__all__ += ["dag_to_cpdag", "shd", "structure_edges"]
