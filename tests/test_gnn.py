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
    assert a.description["test_fold"] == 0 and b.description["test_fold"] == 1
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
