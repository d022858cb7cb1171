"""Float64 enumeration of an unrolled DBN (the dict from ``dbn.unroll_dict``)."""

import itertools

import numpy as np


def enumerate_unrolled(d, evidence_by_name):
    names = list(d["states"])
    cards = [len(d["states"][n]) for n in names]
    pos = {n: i for i, n in enumerate(names)}
    ranges = [[evidence_by_name[n]] if evidence_by_name.get(n, -1) >= 0 else range(c)
              for n, c in zip(names, cards)]
    assigns = np.array(list(itertools.product(*ranges)), dtype=int)
    logp = np.zeros(len(assigns))
    for n in names:
        cpt = np.asarray(d["cpts"][n], np.float64)
        idx = tuple(assigns[:, pos[p]] for p in d["parents"][n]) + (assigns[:, pos[n]],)
        with np.errstate(divide="ignore"):
            logp += np.log(cpt[idx])
    m = logp.max()
    log_z = m + np.log(np.exp(logp - m).sum())
    post = np.exp(logp - log_z)
    marg = {}
    for n, c in zip(names, cards):
        marg[n] = np.bincount(assigns[:, pos[n]], weights=post, minlength=c)
    best = assigns[np.argmax(logp)]
    srt = np.sort(logp)
    gap = srt[-1] - srt[-2] if len(srt) > 1 else np.inf
    return dict(log_z=log_z, marginals=marg, mpe={n: best[pos[n]] for n in names}, mpe_logp=logp.max(),
                mpe_gap=gap)
