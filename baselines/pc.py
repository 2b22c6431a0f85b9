"""PC, stable variant — reference baseline for the ``pc`` task. One file, top to bottom.

PC (Spirtes & Glymour 1991) finds the Markov equivalence class (CPDAG) of a causal DAG from
conditional-independence (CI) tests, in three steps:

1. Skeleton: start from the complete undirected graph; at level d = 0, 1, 2, ... remove the edge
   x — y if x and y test independent given some set S of d other neighbours of x (or of y).
   The separating sets found are remembered.
2. V-structures: for every unshielded triple x — y — z (x, z not adjacent), orient x -> y <- z if
   y is in no separating set of x and z.
3. Meek's rules R1-R3, to a fixpoint: orient what must be oriented to create no new v-structure
   and no cycle.

This implementation follows PC-stable (Colombo & Maathuis 2014) and causal-learn's ``pc`` with its
defaults (``stable=True, uc_rule=0, uc_priority=2``), so that both give the same CPDAG on the
same data; the tests check that. Only numpy and scipy: causal-learn is a test-time peer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, Callable

import numpy as np
from scipy.special import chdtrc, ndtr  # chi2.sf(x, k) == chdtrc(k, x); norm.sf(z) == ndtr(-z)

from advbench.tasks.pc.contract import Dataset, Graph


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    alpha: float = 0.01  # significance level: p > alpha means "independent", the edge goes
    test: str = "auto"  # "chisq", "fisherz", or "auto": chisq on discrete data, fisherz on continuous
    stable: bool = True  # freeze adjacencies per level, so the output does not depend on column order
    # Largest conditioning set tried. None: the budget's limits["max_condition_set"], else no cap.
    max_condition_set: int | None = None


# ---------------------------------------------------------------------------------------------
# Conditional-independence tests: each maps (x, y, S) to a p-value
# ---------------------------------------------------------------------------------------------

class ChiSquare:
    """Pearson's chi-square test of X _||_ Y | S on discrete data, one contingency table per
    configuration of S, with causal-learn's degrees of freedom: every configuration s of S that
    occurs contributes (|X|_s - 1)(|Y|_s - 1), where |X|_s counts only the values of X seen with s.
    Empty rows and columns are dropped because their expected counts are 0; counting them would
    inflate the degrees of freedom and make sparse tables look independent."""

    # Above this many cells, count over the configurations of S that occur rather than all of them.
    DENSE_CELLS = 100_000

    # Configuration codes kept for reuse, at most this many bytes (CHILD at n = 5000: 1872 requests
    # for 391 distinct codes, 15 MB).
    CONFIG_CACHE_BYTES = 64 * 2**20

    def __init__(self, data: np.ndarray) -> None:
        # Re-code each column as 0..k-1 over the values actually seen: unseen states add nothing.
        codes = [np.unique(col, return_inverse=True)[1] for col in np.asarray(data).T]
        self.codes = np.ascontiguousarray(np.stack(codes).astype(np.int64))  # (p, n): one row per variable
        self.card = self.codes.max(axis=1) + 1
        self._configs: dict[tuple[int, ...], np.ndarray] = {}
        self._config_bytes = 0

    def configurations(self, S: tuple[int, ...]) -> np.ndarray:
        """Each sample's configuration of S as one integer (mixed radix over the states of S), read-only.

        Many sets share a prefix and the next level extends them by one variable, so codes are
        kept, and S's is its prefix's times |S[-1]| plus S[-1]'s code: one pass over the samples per
        new S instead of one per variable of S."""
        S = tuple(S)
        if not S:
            return np.zeros(self.codes.shape[1], np.int64)
        s = self._configs.get(S)
        if s is None:
            s = self.configurations(S[:-1]) * self.card[S[-1]] + self.codes[S[-1]]
            s.flags.writeable = False
            if self._config_bytes + s.nbytes <= self.CONFIG_CACHE_BYTES:
                self._configs[S] = s
                self._config_bytes += s.nbytes
        return s

    def __call__(self, x: int, y: int, S: tuple[int, ...]) -> float:
        cx, cy = int(self.card[x]), int(self.card[y])
        # Encode each sample's configuration of S as one integer...
        s = self.configurations(S)
        n_conf = math.prod(int(self.card[v]) for v in S)
        if n_conf * cx * cy > self.DENSE_CELLS:  # ...and renumber the ones that occur if there are many
            _, s = np.unique(s, return_inverse=True)
            n_conf = int(s.max()) + 1
        # ...so one bincount fills every table at once: counts[s, x, y].
        cell = (s * cx + self.codes[x]) * cy + self.codes[y]
        counts = np.bincount(cell, minlength=n_conf * cx * cy).reshape(n_conf, cx, cy).astype(np.float64)
        return float(self._p_values(counts, 1, n_conf, cx, cy)[0])

    # Cells of one chunk: the joint tables counted by one bincount (and its sets x samples cell
    # codes), or the tests' tables whose statistics are computed together.
    BATCH_CELLS = 250_000

    def batch(self, keys: list[tuple[int, int, tuple[int, ...]]]) -> np.ndarray:
        """The p-values of many tests at once, the same numbers as calling the test on each.

        A level of PC-stable knows every test it will run before it runs any, and one test alone
        spends most of its time starting small numpy operations. Two things make a batch fast:

        1. Tests on the same variables share one count. (x, y | S) needs the joint configurations
           of {x, y} and S, and a level asks about one set of variables from up to C(|S|+2, 2)
           sides (CHILD at n = 5000: 4038 tests on 1482 sets). Each set's joint table is counted
           once, many sets by one ``bincount``.
        2. Each test's tables (configurations of S x states of X x states of Y) are read out of its
           set's table by index arithmetic, tests of similar size side by side, padded to the
           chunk's largest: padding reads a cell that is always 0, so it drops out exactly as
           configurations and states that do not occur do above. One chunk's statistics are then a
           few array operations. The test is symmetric in X and Y; X is the one of fewer states."""
        p = np.ones(len(keys))
        card = self.card.tolist()
        by_size: dict[int, list[int]] = defaultdict(list)
        configurations_of: dict[tuple[int, ...], int] = {}  # a level asks about each S many times
        for i, (x, y, S) in enumerate(keys):
            n_conf = configurations_of.get(S)
            if n_conf is None:
                n_conf = configurations_of[S] = math.prod(card[v] for v in S)
            if n_conf * card[x] * card[y] > self.DENSE_CELLS:  # huge tables: count only the configurations seen
                p[i] = self(x, y, S)
            else:
                by_size[len(S)].append(i)
        for size, rows in by_size.items():
            tests = np.array([(keys[i][0], keys[i][1], *keys[i][2]) for i in rows], np.intp).reshape(len(rows), size + 2)
            p[rows] = self._given_sets_of_one_size(tests)
        return p

    def _given_sets_of_one_size(self, tests: np.ndarray) -> np.ndarray:
        """p-values of ``tests``, rows (x, y, S...) with S of one size."""
        k = self.card[tests]  # states of each test's variables
        swap = k[:, 0] > k[:, 1]
        tests[swap, :2], k[swap, :2] = tests[swap, 1::-1], k[swap, 1::-1]
        sets, set_of = np.unique(np.sort(tests, axis=1), axis=0, return_inverse=True)
        set_of = set_of.reshape(-1)
        counts, table_start = self._joint_tables(sets)
        zero = len(counts) - 1
        # Each test variable's stride in its set's table (C order over the set's sorted variables).
        place = np.argsort(np.argsort(tests, axis=1), axis=1)  # where each test variable sits in its set
        stride = np.take_along_axis(_c_order_strides(self.card[sets])[set_of], place, axis=1)
        n_conf = k[:, 2:].prod(axis=1)
        p = np.empty(len(tests))
        for chunk, c, kx, ky in self._chunks_by_size(n_conf, k[:, 0], k[:, 1]):
            t = len(chunk)
            # Configuration j of S, digit by digit (mixed radix over S's states), and where it sits.
            k_s = k[chunk, 2:]
            j = np.arange(c)
            digits = j[None, :, None] // _c_order_strides(k_s)[:, None, :] % k_s[:, None, :]
            at_s = np.einsum("tjd,td->tj", digits, stride[chunk, 2:]) + table_start[set_of[chunk], None]
            at_s[j >= n_conf[chunk, None]] = zero
            at_x = np.arange(kx) * stride[chunk, 0, None]
            at_x[np.arange(kx) >= k[chunk, 0, None]] = zero
            at_y = np.arange(ky) * stride[chunk, 1, None]
            at_y[np.arange(ky) >= k[chunk, 1, None]] = zero
            at = (at_s[:, :, None] + at_x[:, None, :])[:, :, :, None] + at_y[:, None, None, :]
            np.minimum(at, zero, out=at)  # a padded part anywhere reads the zero
            p[chunk] = self._p_values(counts[at].reshape(t * c, kx, ky), t, c, kx, ky)
        return p

    def _joint_tables(self, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts of the joint configurations of each row of ``sets`` (sorted variables), in C order
        over its variables, the tables end to end and then one zero; and where each table starts."""
        n = self.codes.shape[1]
        card = self.card.tolist()
        start = np.concatenate([[0], np.cumsum(self.card[sets].prod(axis=1))])
        counts = np.zeros(int(start[-1]) + 1)
        rows = sets.tolist()
        first = 0
        while first < len(rows):
            last = first + 1
            while (last < len(rows) and (last - first + 1) * n <= self.BATCH_CELLS
                   and start[last + 1] - start[first] <= self.BATCH_CELLS):
                last += 1
            cell = np.empty((last - first, n), np.int64)
            for i, variables in enumerate(rows[first:last]):  # the set's configuration: its prefix's, extended
                np.multiply(self.configurations(tuple(variables[:-1])), card[variables[-1]], out=cell[i])
                cell[i] += self.codes[variables[-1]]
            cell += (start[first:last] - start[first])[:, None]
            counts[start[first]:start[last]] = np.bincount(cell.ravel(), minlength=int(start[last] - start[first]))
            first = last
        return counts, start[:-1]

    def _chunks_by_size(self, n_conf: np.ndarray, kx: np.ndarray, ky: np.ndarray):
        """Tests in chunks of similar table size: (indices, configurations, |X|, |Y|) padded to the
        chunk's largest. A chunk grows while padding at most triples its cells."""
        cells = n_conf * kx * ky
        order = np.argsort(cells, kind="stable")
        sizes = list(zip(cells[order].tolist(), n_conf[order].tolist(), kx[order].tolist(), ky[order].tolist()))
        start = 0
        while start < len(order):
            c = x = y = actual = 0
            end = start
            while end < len(order):
                cells_i, c_i, x_i, y_i = sizes[end]
                padded = (end - start + 1) * max(c, c_i) * max(x, x_i) * max(y, y_i)
                if end > start and (padded > self.BATCH_CELLS or padded > 3 * (actual + cells_i)):
                    break
                c, x, y, actual = max(c, c_i), max(x, x_i), max(y, y_i), actual + cells_i
                end += 1
            yield order[start:end], c, x, y
            start = end

    @staticmethod
    def _p_values(o: np.ndarray, t: int, c: int, kx: int, ky: int) -> np.ndarray:
        """Chi-square p-values of t tests from their tables o, (t * c, |X|, |Y|) counts, row i*c + j
        test i's table under configuration j (consumed).

        Pearson's statistic over the cells whose expected count E = nx ny / ns is positive is
        sum O^2 / E - N, so one configuration's share is ns (sum_ab O_ab^2 / (nx_a ny_b) - 1): no
        expected-count tables are made, and the reductions over the small |X| and |Y| axes are
        einsums (numpy's sum loops slowly over an axis of 2 to 6)."""
        nx = np.einsum("iab->ia", o)
        ny = np.einsum("iab->ib", o)
        ns = np.einsum("ia->i", nx)
        # Where a margin is 0 its row or column of counts is 0 as well: any finite inverse will do.
        inv_nx = 1.0 / np.maximum(nx, 1.0)
        inv_ny = 1.0 / np.maximum(ny, 1.0)
        o *= o
        o *= inv_ny[:, None, :]
        share = (np.einsum("iab,ia->i", o, inv_nx) - 1.0) * ns
        stat = np.maximum(np.einsum("ij->i", share.reshape(t, c)), 0.0)  # rounding can leave -1e-13
        # Degrees of freedom: (values of X seen - 1)(values of Y seen - 1) per configuration seen.
        seen_x = np.einsum("ia->i", (nx > 0).view(np.int8), dtype=np.int64)
        seen_y = np.einsum("ib->i", (ny > 0).view(np.int8), dtype=np.int64)
        dof = ((seen_x - 1) * (seen_y - 1) * (ns > 0)).reshape(t, c).sum(axis=1)
        return np.where(dof == 0, 1.0, chdtrc(np.maximum(dof, 1), stat))


def _c_order_strides(states: np.ndarray) -> np.ndarray:
    """Row by row, the strides of a C-order table with ``states[i]`` values along its axes: each
    axis's step is the product of the axes after it."""
    strides = np.ones_like(states)
    strides[:, :-1] = np.cumprod(states[:, :0:-1], axis=1)[:, ::-1]
    return strides


class FisherZ:
    """Fisher's z test of zero partial correlation, for linear-Gaussian data.

    The partial correlation of x and y given S comes from the inverse of the correlation matrix
    restricted to (x, y, S); z = atanh(r) is about N(0, 1 / (n - |S| - 3)) under independence."""

    def __init__(self, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.float64)
        self.n = data.shape[0]
        self.corr = np.corrcoef(data.T)

    def __call__(self, x: int, y: int, S: tuple[int, ...]) -> float:
        return float(self.batch([(x, y, tuple(S))])[0])

    def batch(self, keys: list[tuple[int, int, tuple[int, ...]]]) -> np.ndarray:
        """The p-values of many tests at once: the tests with conditioning sets of one size invert
        their correlation blocks as one stack, the same numbers as calling the test on each."""
        p = np.empty(len(keys))
        by_size: dict[int, list[int]] = defaultdict(list)
        for i, (_, _, S) in enumerate(keys):
            by_size[len(S)].append(i)
        for k, rows in by_size.items():
            idx = np.array([[keys[i][0], keys[i][1], *keys[i][2]] for i in rows], dtype=np.intp)
            prec = np.linalg.inv(self.corr[idx[:, :, None], idx[:, None, :]])
            r = -prec[:, 0, 1] / np.sqrt(np.abs(prec[:, 0, 0] * prec[:, 1, 1]))
            r = np.clip(r, -1 + 1e-15, 1 - 1e-15)  # |r| = 1 for deterministic relations
            z = np.sqrt(self.n - k - 3) * np.abs(np.arctanh(r))
            p[rows] = 2 * ndtr(-z)
        return p


class CachedTest:
    """Remembers p-values: stable PC asks about (x, y | S) from x's side and again from y's."""

    def __init__(self, test: Callable[[int, int, tuple[int, ...]], float]) -> None:
        self.test = test
        self.cache: dict[tuple[int, int, tuple[int, ...]], float] = {}
        self.n_tests = 0  # tests actually computed (the task's throughput unit)

    def __call__(self, x: int, y: int, S: tuple[int, ...]) -> float:
        key = (min(x, y), max(x, y), tuple(sorted(S)))
        p = self.cache.get(key)
        if p is None:
            p = self.cache[key] = self.test(key[0], key[1], key[2])
            self.n_tests += 1
        return p

    def p_values(self, keys: list[tuple[int, int, tuple[int, ...]]]) -> list[float]:
        """The p-values of ``keys``, each already in the cache's form (x < y, S sorted), in order;
        the unknown ones computed in one batch where the test can batch."""
        batch = getattr(self.test, "batch", None)
        unknown = [key for key in dict.fromkeys(keys) if key not in self.cache]
        if batch is not None and unknown:
            self.cache.update(zip(unknown, batch(unknown).tolist()))
            self.n_tests += len(unknown)
        return [self.cache[key] if key in self.cache else self(*key) for key in keys]


# ---------------------------------------------------------------------------------------------
# Step 1: the skeleton
# ---------------------------------------------------------------------------------------------

def skeleton(ci: CachedTest, p: int, cfg: Config, max_k: int | None,
             after_level: Callable[[int], bool] | None = None) -> tuple[np.ndarray, dict, int]:
    """Return (adjacency, separating sets, levels run).

    ``sepsets[(x, y)]`` (x < y) is the union of *every* conditioning set that separated x and y at
    the level where their edge went, from x's side and from y's: a collider x -> m <- y needs m in
    none of them. Taking all of them, not the first found, makes step 2 independent of the order
    in which subsets are tried (and is what causal-learn does). ``after_level(depth)`` may return
    False to stop early (time cap).
    """
    adj = ~np.eye(p, dtype=bool)
    sepsets: dict[tuple[int, int], set[int]] = {}
    depth = 0
    while adj.sum(axis=1).max() - 1 >= depth and (max_k is None or depth <= max_k):
        # PC-stable: the neighbour sets used at this level are those at its start. Removing edges
        # on the fly (original PC) makes the result depend on the order of the variables.
        neighbours = [np.flatnonzero(adj[x]) for x in range(p)]
        if cfg.stable:  # every test of the level is known now: compute them together
            separated = stable_level(ci, neighbours, depth, cfg.alpha)
            for (a, b), found in separated.items():  # only now, after every pair at this level was tested
                sepsets.setdefault((a, b), set()).update(found)
                adj[a, b] = adj[b, a] = False
        else:  # original PC: an edge goes as soon as a test separates its ends
            for x in range(p):
                for y in neighbours[x]:
                    if not adj[x, y]:
                        continue
                    neighbours[x] = np.flatnonzero(adj[x])
                    for S in combinations([int(v) for v in neighbours[x] if v != y], depth):
                        if ci(x, int(y), S) > cfg.alpha:
                            sepsets.setdefault((min(x, int(y)), max(x, int(y))), set()).update(S)
                            adj[x, y] = adj[y, x] = False
                            break
        depth += 1
        if after_level is not None and not after_level(depth):
            break
    return adj, sepsets, depth


def stable_level(ci: CachedTest, neighbours: list[np.ndarray], depth: int,
                 alpha: float) -> dict[tuple[int, int], set[int]]:
    """One level of PC-stable: every ordered pair x, y of neighbours is tested given each set S of
    ``depth`` other neighbours of x. Returns the pairs (x < y) found independent given some S, each
    with the union of all such S from both sides. Every test of the level is listed before any
    runs, so they are computed in one batch and judged together."""
    keys: list[tuple[int, int, tuple[int, ...]]] = []
    segments: list[tuple[int, int, int]] = []  # (x, y, end of its tests in keys)
    for x, nb in enumerate(neighbours):
        nb = nb.tolist()
        for y in nb:  # neighbours are sorted, so each S comes out sorted, as the cache keys them
            keys.extend((x, y, S) if x < y else (y, x, S) for S in combinations([v for v in nb if v != y], depth))
            segments.append((x, y, len(keys)))
    independent = np.array(ci.p_values(keys)) > alpha
    found_before = np.concatenate([[0], np.cumsum(independent)])
    separated: dict[tuple[int, int], set[int]] = {}
    start = 0
    for x, y, end in segments:
        if found_before[end] > found_before[start]:
            found = separated.setdefault((min(x, y), max(x, y)), set())
            for i in np.flatnonzero(independent[start:end]):
                found.update(keys[start + i][2])
        start = end
    return separated


# ---------------------------------------------------------------------------------------------
# Steps 2 and 3: orientation. g[i, j] = 1 means "i -> j is allowed": i -> j is g[i, j] = 1,
# g[j, i] = 0; i — j is g[i, j] = g[j, i] = 1 (the convention of advbench.tasks.pc.contract.Graph).
# ---------------------------------------------------------------------------------------------

def is_directed(g: np.ndarray, i: int, j: int) -> bool:
    return bool(g[i, j] and not g[j, i])


def is_undirected(g: np.ndarray, i: int, j: int) -> bool:
    return bool(g[i, j] and g[j, i])


def orient(g: np.ndarray, i: int, j: int) -> None:
    g[i, j], g[j, i] = 1, 0


def is_ancestor(g: np.ndarray, a: int, b: int) -> bool:
    """Is there a directed path a -> ... -> b (or a == b)?"""
    directed = (g == 1) & (g.T == 0)
    seen = np.zeros(len(g), bool)
    seen[a] = True
    frontier = [a]
    while frontier:
        nxt = np.flatnonzero(directed[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        frontier = list(nxt)
    return bool(seen[b])


def adjacent_pairs(g: np.ndarray) -> list[tuple[int, int]]:
    """Every ordered adjacent pair (a, b), in the order causal-learn enumerates them (pairs with a
    tail at b first, then those with an arrowhead at b). When sample errors make rules conflict,
    the rule applied first wins, so the same order gives the same CPDAG edge for edge."""
    p = len(g)
    tails = [(c, r) for r in range(p) for c in range(p) if g[r, c]]
    heads = [(c, r) for r in range(p) for c in range(p) if g[c, r] and not g[r, c]]
    return tails + heads


def triples(g: np.ndarray) -> tuple[list, list, list]:
    """(unshielded triples a-b-c, triangles a-b-c, kites (i, j, k, l)) over the skeleton of g."""
    skel = (g | g.T).astype(bool)
    pairs = adjacent_pairs(g)
    starting_at = defaultdict(list)
    for a, b in pairs:
        starting_at[a].append(b)
    unshielded, triangles = [], []
    for a, b in pairs:
        for c in starting_at[b]:
            if c != a:
                (triangles if skel[a, c] else unshielded).append((a, b, c))
    # Kite: i — j — l, i — k — l, i — l, with j and k not adjacent (Meek's R3 pattern).
    by_ends = defaultdict(list)
    for i, j, l in triangles:
        by_ends[(i, l)].append(j)
    kites = [(i, j, k, l) for i, j, l in triangles for k in by_ends[(i, l)] if j < k and not skel[j, k]]
    return unshielded, triangles, kites


def orient_v_structures(adj: np.ndarray, sepsets: dict[tuple[int, int], set[int]]) -> np.ndarray:
    """x -> y <- z for every unshielded x — y — z with y outside sepset(x, z).

    Where two v-structures disagree about an edge, the one found first stands: a triple is skipped
    if y -> x or y -> z is already oriented (causal-learn's ``uc_priority=2``). This keeps the
    graph free of bidirected edges."""
    g = adj.astype(np.int8)
    unshielded, _, _ = triples(g)
    for x, y, z in unshielded:
        if x < z and y not in sepsets[(x, z)]:
            if not is_directed(g, y, x) and not is_directed(g, y, z):
                orient(g, x, y)
                orient(g, z, y)
    return g


def meek(g: np.ndarray) -> np.ndarray:
    """Meek's rules R1-R3, swept in turn until nothing changes. No rule may close a cycle."""
    g = g.copy()
    unshielded, triangles, kites = triples(g)
    changed = True
    while changed:
        changed = False
        # R1: i -> j — k, i and k not adjacent  =>  j -> k (else j would be a new collider).
        for i, j, k in unshielded:
            if is_directed(g, i, j) and is_undirected(g, j, k) and not is_ancestor(g, k, j):
                orient(g, j, k)
                changed = True
        # R2: i -> j -> k and i — k  =>  i -> k (else a cycle).
        for i, j, k in triangles:
            if is_directed(g, i, j) and is_directed(g, j, k) and is_undirected(g, i, k) \
                    and not is_ancestor(g, k, i):
                orient(g, i, k)
                changed = True
        # R3: i — j -> l, i — k -> l, i — l, j and k not adjacent  =>  i -> l.
        for i, j, k, l in kites:
            if is_undirected(g, i, j) and is_undirected(g, i, k) and is_directed(g, j, l) \
                    and is_directed(g, k, l) and is_undirected(g, i, l) and not is_ancestor(g, l, i):
                orient(g, i, l)
                changed = True
    return g


# ---------------------------------------------------------------------------------------------
# The whole algorithm, and the entry points the harness calls
# ---------------------------------------------------------------------------------------------

def make_test(data: np.ndarray, test: str) -> CachedTest:
    if test == "chisq":
        return CachedTest(ChiSquare(data))
    if test == "fisherz":
        return CachedTest(FisherZ(data))
    raise ValueError(f"unknown CI test {test!r}: use 'chisq' or 'fisherz'")


def pc(data: np.ndarray, test: str, cfg: Config | None = None, max_k: int | None = None,
       after_level: Callable[[int], bool] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Run PC on ``data`` (n, p); return the CPDAG matrix (Graph convention) and run statistics."""
    cfg = cfg or Config()
    ci = make_test(data, test)
    adj, sepsets, levels = skeleton(ci, data.shape[1], cfg, max_k, after_level)
    g = meek(orient_v_structures(adj, sepsets))
    return g, {"ci_tests": ci.n_tests, "levels": levels, "sepsets": sepsets, "skeleton": adj}


def discover(train: Dataset, ctx: Any) -> Graph:
    """``pc:reference``: PC-stable with alpha 0.01; chi-square on discrete data, Fisher-z otherwise."""
    cfg = Config()
    test = cfg.test if cfg.test != "auto" else ("chisq" if train.kind == "discrete" else "fisherz")
    max_k = cfg.max_condition_set
    if max_k is None and ctx.limits.get("max_condition_set") is not None:
        max_k = int(ctx.limits["max_condition_set"])
    ctx.record_config(**asdict(cfg), test_used=test, max_condition_set_used=max_k)

    ci = make_test(train.data, test)
    counted = 0

    def after_level(depth: int) -> bool:  # report work per level; stop refining once time is up
        nonlocal counted
        ctx.count(ci.n_tests - counted)
        counted = ci.n_tests
        ctx.progress(depth, len(train.nodes) - 1)
        return ctx.time_left() > 0

    adj, sepsets, levels = skeleton(ci, len(train.nodes), cfg, max_k, after_level)
    g = meek(orient_v_structures(adj, sepsets))
    ctx.count(ci.n_tests - counted)
    ctx.record_config(levels=levels, ci_tests=ci.n_tests)
    est = Graph(train.nodes, g)
    ctx.checkpoint(est)  # scores it with the clock paused; raises BudgetExhausted past the time cap
    return est


def empty_graph(train: Dataset, ctx: Any) -> Graph:
    """``pc:floor``: no edges at all (skeleton F1 0; SHD = the number of edges of the true CPDAG)."""
    est = Graph.empty(train.nodes)
    ctx.checkpoint(est)
    return est
