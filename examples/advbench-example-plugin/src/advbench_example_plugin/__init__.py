"""Chow-Liu tree as an advbench method for the ``pc`` task.

A method is any callable ``method(train, ctx) -> solution``. For ``pc`` the task hands over a
``Dataset`` (samples, node names, kind) and scores a ``Graph``; both types live in
``advbench.tasks.pc.contract``, which is the whole contract a plugin implements against (the
task's held-out code, ``advbench.tasks.pc.heldout``, is off limits to methods).
"""

from __future__ import annotations

import numpy as np


def _mutual_information(data: np.ndarray, kind: str) -> np.ndarray:
    n, p = data.shape
    if kind == "continuous":
        # For jointly Gaussian variables MI = -1/2 log(1 - r^2).
        r = np.clip(np.corrcoef(data, rowvar=False), -0.999999, 0.999999)
        return -0.5 * np.log(1.0 - r**2)
    mi = np.zeros((p, p))
    for i in range(p):
        for j in range(i + 1, p):
            joint = np.zeros((data[:, i].max() + 1, data[:, j].max() + 1))
            np.add.at(joint, (data[:, i], data[:, j]), 1.0)
            joint /= n
            outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
            nz = joint > 0
            mi[i, j] = mi[j, i] = float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())
    return mi


def chow_liu(train, ctx):
    """Maximum spanning tree of mutual information (Prim's algorithm), as an undirected graph."""
    from advbench.tasks.pc.contract import Graph

    mi = _mutual_information(train.data, train.kind)
    p = mi.shape[0]
    in_tree = np.zeros(p, bool)
    in_tree[0] = True
    best, parent = mi[0].copy(), np.zeros(p, int)
    edges = []
    for _ in range(p - 1):
        j = int(np.argmax(np.where(in_tree, -np.inf, best)))
        edges.append((int(parent[j]), j))
        in_tree[j] = True
        better = mi[j] > best
        best, parent = np.where(better, mi[j], best), np.where(better, j, parent)
    ctx.count(p * (p - 1) // 2)  # pairwise scores computed
    return Graph.from_edges(train.nodes, undirected=edges)
