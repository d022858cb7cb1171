"""gm.learn.structure: learning the graph of a discrete Bayesian network from complete records.

* scores: `family_scores` (BIC/MDL, AIC, log-likelihood, K2, BDeu, BDs; many families per compiled call),
  `network_score`, `ScoreCache`;
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
