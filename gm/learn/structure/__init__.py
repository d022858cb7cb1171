"""gm.learn.structure: learning the graph of a discrete Bayesian network from complete records.

* scores: `family_scores` (BIC/MDL, AIC, log-likelihood, K2, BDeu, BDs; many families per compiled call),
  `network_score`, `ScoreCache`;
"""

from gm.learn.structure.scores import SCORES, ScoreCache, family_scores, network_score, scores_from_counts

__all__ = ["SCORES", "ScoreCache", "family_scores", "network_score", "scores_from_counts"]
