"""gnn: the GCN layer and pooling against PyG on identical inputs; folds, leakage control, targets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pyg_nn = pytest.importorskip("torch_geometric.nn")

from advbench.baselines import gnn as bg  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.gnn import SPEC  # noqa: E402
from advbench.tasks.gnn import contract as tc  # noqa: E402
from advbench.tasks.gnn import heldout as tg  # noqa: E402

SECRET = b"some-secret-key-123"


@pytest.fixture(scope="module")
def family_problem():
    return tg.GNNTask().build(variant="family", seed=3, budget=SPEC.budgets["quick"], seal=Seal(3))


def test_gcn_layer_matches_pyg_gcnconv_with_copied_weights(family_problem):
    graphs = list(family_problem.train.graphs[:7])
    x, edge_index, batch, n = bg.collate(graphs, "cpu")
    torch.manual_seed(0)
    ours = bg.GCNLayer(x.size(1), 16)
    with torch.no_grad():
        ours.bias.normal_()
    peer = pyg_nn.GCNConv(x.size(1), 16, cached=False)
    with torch.no_grad():
        peer.lin.weight.copy_(ours.weight)
        peer.bias.copy_(ours.bias)
    torch.testing.assert_close(ours(x, edge_index), peer(x, edge_index), atol=1e-5, rtol=1e-5)


def test_gcn_layer_matches_dense_normalised_adjacency(family_problem):
    g = family_problem.train.graphs[0]
    x = torch.as_tensor(g.x)
    A = np.zeros((g.num_nodes, g.num_nodes))
    A[g.edge_index[0], g.edge_index[1]] = 1.0
    A_hat = A + np.eye(g.num_nodes)
    d = A_hat.sum(1)
    norm = torch.as_tensor(A_hat / np.sqrt(np.outer(d, d)), dtype=torch.float32)
    layer = bg.GCNLayer(x.size(1), 8)
    expected = norm @ x @ layer.weight.T + layer.bias
    torch.testing.assert_close(layer(x, torch.as_tensor(g.edge_index)), expected, atol=1e-5, rtol=1e-5)


def test_mean_pool_matches_pyg_and_batching_keeps_graphs_apart(family_problem):
    graphs = list(family_problem.train.graphs[:9])
    x, edge_index, batch, n = bg.collate(graphs, "cpu")
    h = torch.randn(x.size(0), 5)
    torch.testing.assert_close(bg.mean_pool(h, batch, n), pyg_nn.global_mean_pool(h, batch), atol=1e-6, rtol=1e-6)
    torch.manual_seed(0)
    model = bg.GCN(x.size(1), 4, bg.Config()).eval()
    with torch.no_grad():
        together = model(x, edge_index, batch, n)
        one_by_one = torch.cat([model(*bg.collate([g], "cpu")) for g in graphs])
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-5)  # batch offsets are right


def test_edges_are_undirected_and_features_are_capped_degrees(family_problem):
    for g in family_problem.train.graphs[:50]:
        pairs = set(map(tuple, g.edge_index.T))
        assert all((b, a) in pairs for a, b in pairs)
        deg = np.bincount(g.edge_index[0], minlength=g.num_nodes)
        assert np.array_equal(g.x.argmax(1), np.minimum(deg, tc.MAX_DEGREE)) and g.x.sum() == g.num_nodes


def test_folds_split_by_graph_are_stratified_and_the_seed_picks_the_fold():
    task = tg.GNNTask()
    a = task.build(variant="family", seed=0, budget=None, seal=Seal(0))
    b = task.build(variant="family", seed=1, budget=None, seal=Seal(1))
    assert (a.description["repeat"], a.description["fold"]) == (0, 0)
    assert (b.description["repeat"], b.description["fold"]) == (0, 1)
    assert np.bincount(a.heldout["labels"]).tolist() == [25, 25, 25, 25]
    # Held-out graphs are not among the method's graphs, and carry no label.
    train_keys = {g.edge_index.tobytes() for g in a.train.graphs}
    assert not any(g.edge_index.tobytes() in train_keys for g in a.heldout["graphs"])
    assert all(g.y == -1 for g in a.heldout["graphs"])
    assert len(a.train.graphs) + len(a.heldout["graphs"]) == 1000


def _keys(graphs) -> list[bytes]:
    return [g.edge_index.tobytes() + g.x.tobytes() for g in graphs]


def test_unsealed_data_is_unchanged_and_sealing_redraws_graphs_and_folds():
    task = tg.GNNTask()
    plain = task.build(variant="csl", seed=2, budget=None, seal=Seal(2))
    # The data set as the task drew it before sealing: one generator, default_rng([DATA_SEED, 2])
    # for csl (the third variant), first the graphs, then the folds; fold 2 is held out.
    rng = np.random.default_rng([20240, 2])
    graphs = tg.make_csl(rng)
    folds = tg.stratified_folds(np.array([g.y for g in graphs]), 10, rng)
    assert _keys(plain.train.graphs) == _keys(g for g, f in zip(graphs, folds) if f != 2)
    assert _keys(plain.heldout["graphs"]) == _keys(g for g, f in zip(graphs, folds) if f == 2)
    assert plain.heldout["labels"].tolist() == [g.y for g, f in zip(graphs, folds) if f == 2]

    sealed = task.build(variant="csl", seed=2, budget=None, seal=Seal(2, key=SECRET))
    assert set(_keys(sealed.heldout["graphs"])).isdisjoint(_keys(graphs))  # other graphs altogether
    assert len(sealed.heldout["graphs"]) == len(plain.heldout["graphs"]) and sealed.description == plain.description
    # Under one key the data set does not change with the run seed: seeds 0-9 are its ten folds.
    tests = [_keys(task.build(variant="csl", seed=k, budget=None, seal=Seal(k, key=SECRET)).heldout["graphs"])
             for k in range(10)]
    everything = [k for fold in tests for k in fold]
    assert len(everything) == len(set(everything)) == 150
    assert set(everything) == set(_keys(sealed.train.graphs)) | set(tests[2])


def test_fold_of_seed_is_repeat_and_fold():
    assert [tc.fold_of_seed(s) for s in (0, 9, 10, 19, 20, 137)] == [(0, 0), (0, 9), (1, 0), (1, 9), (2, 0), (13, 7)]
    assert tc.fold_of_seed(np.int64(23)) == (2, 3)
    for bad in (-1, 1.0, "3", True):
        with pytest.raises(ValueError):
            tc.fold_of_seed(bad)
    with pytest.raises(ValueError):
        tg.GNNTask().build(variant="csl", seed=-1, budget=None, seal=Seal(-1))


def _split(variant: str, seed: int, key: bytes | None = None):
    """(test keys, test labels, train keys) of one seed's build, and its description."""
    p = tg.GNNTask().build(variant=variant, seed=seed, budget=None, seal=Seal(seed, key))
    return _keys(p.heldout["graphs"]), p.heldout["labels"].tolist(), _keys(p.train.graphs), p.description


def _v1_splits(variant: str) -> list[tuple[list[bytes], list[int], list[bytes]]]:
    """What gnn-v1 built for seeds 0-9: one generator, default_rng([DATA_SEED, variant index]),
    first the graphs, then the folds; test fold seed % 10 (so seed 10 was seed 0 again)."""
    rng = np.random.default_rng([20240, list(tg.MAKERS).index(variant)])
    graphs = tg.MAKERS[variant][0](rng)
    folds = tg.stratified_folds(np.array([g.y for g in graphs]), 10, rng)
    return [(_keys(g for g, f in zip(graphs, folds) if f == k), [g.y for g, f in zip(graphs, folds) if f == k],
             _keys(g for g, f in zip(graphs, folds) if f != k)) for k in range(10)]


@pytest.mark.parametrize("variant", ["csl", "family"])
def test_seeds_0_to_9_keep_the_v1_data_and_folds(variant):
    """Repeat 0 is gnn-v1's partition, graph for graph and in the same order (checked against the
    v1 code itself when v2 was made: csl and family seeds 0-9, ba2motif seeds 0-1, sealed too)."""
    v1 = _v1_splits(variant)
    for seed in range(10):
        test, labels, train, desc = _split(variant, seed)
        assert (test, labels, train) == v1[seed], seed
        assert (desc["repeat"], desc["fold"]) == (0, seed)


def test_each_repeat_is_a_stratified_partition_and_repeats_differ():
    """Seeds 0-9 and 10-19 each hold out every graph exactly once; the two partitions differ, seed by
    seed; each fold keeps the class proportions; repeat r's folds come from default_rng([DATA_SEED,
    variant index, r])."""
    repeats = {}
    for r in (0, 1):
        splits = [_split("csl", 10 * r + f) for f in range(10)]
        assert [(d["repeat"], d["fold"]) for *_, d in splits] == [(r, f) for f in range(10)]
        held = [k for test, *_ in splits for k in test]
        assert len(held) == len(set(held)) == 150  # every graph exactly once
        for test, labels, train, _ in splits:
            assert set(train) == set(held) - set(test) and len(train) + len(test) == 150
            # csl has 15 graphs per class: folds 0-4 take two of each class, folds 5-9 one.
            assert sorted(set(np.bincount(labels, minlength=10).tolist())) in ([1], [2])
        repeats[r] = splits
    held0 = {k for test, *_ in repeats[0] for k in test}
    assert held0 == {k for test, *_ in repeats[1] for k in test}  # the same graphs, dealt again
    for f in range(10):
        assert set(repeats[0][f][0]) != set(repeats[1][f][0])  # seed s and s + 10 test on other graphs
    partition = lambda splits: {frozenset(test) for test, *_ in splits}  # noqa: E731
    assert partition(repeats[0]) != partition(repeats[1])
    assert set(_split("csl", 20)[0]) != set(repeats[1][0][0])  # repeat 2 is another shuffle again
    # The public recipe of repeat 1, unsealed: the v1 graphs, dealt with default_rng([20240, 2, 1]).
    rng = np.random.default_rng([20240, 2])
    graphs = tg.make_csl(rng)
    folds = tg.stratified_folds(np.array([g.y for g in graphs]), 10, np.random.default_rng([20240, 2, 1]))
    assert repeats[1][3][0] == _keys(g for g, f in zip(graphs, folds) if f == 3)


def test_sealed_repeats_partition_the_sealed_data_set():
    sealed = [_split("csl", s, SECRET) for s in (0, 10, 11, 12)]
    everything = set(sealed[0][0]) | set(sealed[0][2])
    assert all(set(test) | set(train) == everything for test, _, train, _ in sealed)
    assert set(sealed[0][0]) != set(sealed[1][0])  # repeat 1 deals the sealed graphs anew
    assert not set(sealed[1][0]) & set(sealed[2][0]) and not set(sealed[2][0]) & set(sealed[3][0])
    assert set(sealed[1][0]).isdisjoint(_split("csl", 10)[0])  # and they are not the public graphs


def test_ba2motif_is_the_same_data_set_every_time():
    """PyG's BA generator draws from numpy's global RNG: the task seeds it (and restores it)."""
    pytest.importorskip("torch_geometric.datasets")
    np.random.seed(1)
    a = tg.GNNTask().build(variant="ba2motif", seed=0, budget=None, seal=Seal(0))
    after = np.random.random()
    np.random.seed(2)
    b = tg.GNNTask().build(variant="ba2motif", seed=0, budget=None, seal=Seal(0))
    np.random.seed(1)
    assert np.random.random() == after  # the global state was put back
    assert _keys(a.train.graphs) == _keys(b.train.graphs) and _keys(a.heldout["graphs"]) == _keys(b.heldout["graphs"])


def test_evaluate_sends_no_labels_and_checks_predictions(family_problem):
    seen = []

    class Spy:
        def predict(self, graphs):
            seen.extend(g.y for g in graphs)
            return np.zeros(len(graphs), np.int64)

    task = tg.GNNTask()
    m = task.evaluate(LocalSolution(Spy()), family_problem, get_profile("cpu"))
    assert set(seen) == {-1} and len(seen) == 1000 and m["accuracy"] == pytest.approx(0.25)

    class Bad:
        def __init__(self, out):
            self.out = out

        def predict(self, graphs):
            return self.out(len(graphs))

    for out, error in [(lambda n: np.zeros((n, 1)), ValueError), (lambda n: np.full(n, np.nan), ValueError),
                       (lambda n: np.zeros(n - 1), ValueError), (lambda n: np.full(n, "a"), TypeError)]:
        with pytest.raises(error):
            task.evaluate(LocalSolution(Bad(out)), family_problem, get_profile("cpu"))


def test_floor_is_chance(tmp_path):
    from advbench.runner import run

    rec = run("gnn", "floor", variant="family", seed=0, results_dir=tmp_path)
    assert rec["metrics"]["accuracy"] == pytest.approx(0.25)


@pytest.mark.slow
def test_quick_target_family(tmp_path):
    from advbench.runner import run

    rec = run("gnn", "reference", budget="quick", variant="family", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok" and rec["targets_met"], rec["metrics"]


@pytest.mark.slow
def test_csl_negative_control_stays_at_chance(tmp_path):
    """4-regular circulant graphs are indistinguishable to a GCN: above 0.2 would mean leakage."""
    from advbench.runner import run

    rec = run("gnn", "reference", budget="quick", variant="csl", seed=0, results_dir=tmp_path)
    assert rec["metrics"]["accuracy"] <= 0.2 and rec["metrics"]["train_accuracy"] <= 0.2


@pytest.mark.parametrize("impl", ["advbench", "torch_geometric"])
def test_bench_gcn_layer(benchmark, impl, family_problem):
    x, edge_index, batch, n = bg.collate(list(family_problem.train.graphs[:64]), "cpu")
    layer = bg.GCNLayer(x.size(1), 64) if impl == "advbench" else pyg_nn.GCNConv(x.size(1), 64)
    benchmark.group = "GCN layer forward+backward, 64 graphs"

    def step():
        layer(x, edge_index).sum().backward()

    benchmark(step)


def test_seeded_torch_runs_are_deterministic():
    from advbench.runner import run

    a = run("gnn", "reference", budget="quick", variant="family", seed=4, results_dir=None)
    b = run("gnn", "reference", budget="quick", variant="family", seed=4, results_dir=None)
    assert a["metrics"] == b["metrics"]
    assert [p["metrics"] for p in a["curve"]] == [p["metrics"] for p in b["curve"]]
