"""Search in the compressed domain (smic_fast.query.search, smic/search.hpp). Oracle: cosines of the
queries with the decoded embeddings (Collection.embeddings(), float64) and exact top-k on them."""
from __future__ import annotations

import numpy as np
import pytest

import smic_fast as smic
from smic_fast import _core
from smic_fast.query.search import index_info, search_index

DIM = 48


def clustered(rng: np.random.Generator, n: int, clusters: int = 24, spread: float = 0.35) -> np.ndarray:
    centres = rng.standard_normal((clusters, DIM))
    return (centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Collections of clustered data: own dictionary (two batches, a zero item), paper layout,
    int8 atoms, a refinement layer with small chunks, a shared dictionary."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("search")
    e = clustered(rng, 3000)
    smic.compress(e[:2000], folder / "own.smic", n_atoms=64, n_iter=3, chunk_size=100)
    # Item 17 rewritten with no atom (count 0: a zero reconstruction, cosine 0 with everything).
    dictionary = smic.open(folder / "own.smic").dictionary
    symbols, _ = dictionary._choose(smic.coding.dictionary.normalize_embeddings(e[:2000])[0])
    symbols.counts[17] = 0
    codes = tuple(np.ascontiguousarray(getattr(symbols, f), dtype=np.int32)
                  for f in ("counts", "first", "rest_index", "rest_level"))
    _core.write_collection(str(folder / "own.smic"), e[:2000], dictionary._core, None, None, None, 100, None,
                           "test", True, 0, codes)
    smic.open(folder / "own.smic").append(e[2000:], ids=[f"new{i}" for i in range(1000)], chunk_size=64)
    smic.compress(e, folder / "paper.smic", n_atoms=64, n_nonzero=3, layout="paper", n_iter=3)
    smic.compress(e, folder / "int8.smic", n_atoms=64, n_iter=3, precision="int8", quality="high")
    smic.compress(e, folder / "refined.smic", n_atoms=64, n_iter=3, residual_step=0.05, chunk_size=50)
    shared = smic.open(folder / "own.smic").dictionary
    shared.save(folder / "d.smicd")
    smic.compress(e[:500], folder / "shared.smic", dictionary=shared)
    return folder


def _open(files, name):
    return smic.open(files / name, dictionary=files / "d.smicd" if name == "shared.smic" else None)


def _exact(col, queries):
    decoded = col.embeddings().astype(np.float64)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q @ decoded.T


def _queries(rng, n=12):
    return clustered(rng, n)


NAMES = ["own.smic", "paper.smic", "int8.smic", "shared.smic"]


PARTITIONS = [{"partition": "kmeans"}, {"partition": "kmeans", "n_lists": 7}, {"partition": "lead_atom"}]


@pytest.mark.parametrize("partition", PARTITIONS, ids=["kmeans", "kmeans7", "lead_atom"])
@pytest.mark.parametrize("name", NAMES)
def test_scores_are_the_decoded_cosines(files, name, partition, rng):
    """Under every partition, exhaustive and probed: every score is the cosine of the query with
    the decoded item."""
    col = _open(files, name)
    queries = _queries(rng)
    exact = _exact(col, queries)
    index = search_index(col, **partition)
    assert index.partition == partition["partition"]
    for q, row in zip(queries, exact):
        np.testing.assert_allclose(index.scores(np.ascontiguousarray(q)), row, atol=1e-5)
    for nprobe in (None, 1, 3):
        result = col.search(queries, k=25, nprobe=nprobe, **partition)
        valid = result.positions >= 0
        assert valid[:, 0].all()
        np.testing.assert_allclose(result.scores[valid],
                                   np.take_along_axis(exact, np.maximum(result.positions, 0), axis=1)[valid], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_top_k_is_the_exact_top_k(files, name, rng):
    col = _open(files, name)
    queries = _queries(rng)
    exact = _exact(col, queries)
    k = 10
    result = col.search(queries, k=k)
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    # Same values in the same order; same items wherever the exact scores are not (near) ties.
    np.testing.assert_allclose(result.scores, np.take_along_axis(exact, order, axis=1), atol=1e-5)
    for q in range(len(queries)):
        assert result.ids[q] == [col.ids[p] for p in result.positions[q]]
        top = np.sort(exact[q])[::-1]
        for j in range(k):
            separated = (j == 0 or top[j - 1] - top[j] > 1e-5) and top[j] - top[j + 1] > 1e-5
            if separated:
                assert result.positions[q, j] == order[q, j]
    assert np.all(np.diff(result.scores, axis=1) <= 0)


def test_no_atom_item_scores_zero(files, rng):
    col = _open(files, "own.smic")
    assert not col[17].any()
    assert index_info(col)["items_without_atoms"] >= 1
    assert search_index(col).scores(np.ascontiguousarray(_queries(rng, 1)[0]))[17] == 0.0
    everything = col.search(_queries(rng, 1), k=len(col))  # every item once, the empty one included
    assert sorted(everything.positions[0].tolist()) == list(range(len(col)))


@pytest.mark.parametrize("partition", PARTITIONS, ids=["kmeans", "kmeans7", "lead_atom"])
def test_nprobe_all_lists_is_the_exhaustive_search(files, partition, rng):
    col = _open(files, "own.smic")
    queries = _queries(rng, 20)
    full = col.search(queries, k=10)  # the default index (k-means)
    lists = search_index(col, **partition).n_lists
    assert lists == partition.get("n_lists", col.dictionary.n_atoms if partition["partition"] == "lead_atom"
                                   else round(len(col) ** 0.5))
    for nprobe in (lists, lists + 5):
        probed = col.search(queries, k=10, nprobe=nprobe, **partition)
        np.testing.assert_array_equal(probed.positions, full.positions)
        np.testing.assert_array_equal(probed.scores, full.scores)


def _recall(a, b):
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a.positions.tolist(), b.positions.tolist())]))


def mixtures(rng: np.random.Generator, concepts: np.ndarray, n: int, noise: float = 0.5) -> np.ndarray:
    """Unit rows mixing 1-4 concepts of Zipf-like popularity plus noise (bench_search's data):
    popular concepts appear in many items, beside others."""
    popularity = 1.0 / np.arange(1, len(concepts) + 1) ** 0.8
    counts = np.minimum(rng.geometric(0.5, n), 4)
    picked = rng.choice(len(concepts), size=(n, 4), p=popularity / popularity.sum())
    weights = rng.uniform(0.3, 1.0, (n, 4)) * (np.arange(4)[None, :] < counts[:, None])
    x = np.einsum("nk,nkd->nd", weights, concepts[picked])
    x += noise / np.sqrt(concepts.shape[1]) * rng.standard_normal(x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_kmeans_lists_prune_better_than_lead_atom_lists(tmp_path):
    """Items that mix popular concepts: at as many lists as atoms (64) and equal nprobe, the
    k-means partition returns more of the exhaustive top-10 than lists by largest atom, which
    split near neighbours whose largest atoms differ (measured 0.67/0.79/0.87 against
    0.56/0.71/0.81 at nprobe 1/2/4)."""
    rng = np.random.default_rng(0)
    concepts = rng.standard_normal((200, DIM))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    smic.compress(mixtures(rng, concepts, 4000), tmp_path / "mix.smic", n_atoms=64, n_iter=3)
    col = smic.open(tmp_path / "mix.smic")
    queries = mixtures(rng, concepts, 200)
    full = col.search(queries, k=10)
    lists = col.dictionary.n_atoms
    kmeans, lead = search_index(col, n_lists=lists), search_index(col, partition="lead_atom")
    assert lead.n_lists == kmeans.n_lists == lists
    assert sum(kmeans.list_sizes) == sum(lead.list_sizes) == len(col)
    for nprobe in (1, 2, 4):
        by_kmeans = _recall(full, col.search(queries, k=10, nprobe=nprobe, n_lists=lists))
        by_lead = _recall(full, col.search(queries, k=10, nprobe=nprobe, partition="lead_atom"))
        assert by_kmeans > by_lead + 0.02, (nprobe, by_kmeans, by_lead)


def test_kmeans_index_does_not_depend_on_threads_and_is_seeded(files, rng):
    col = _open(files, "own.smic")
    one = _core.SearchIndex(col._core, 1)
    two = _core.SearchIndex(col._core, 2)
    np.testing.assert_array_equal(one.centroids, two.centroids)
    assert one.list_sizes == two.list_sizes
    queries = np.ascontiguousarray(_queries(rng, 9))
    for a, b in zip(one.search(queries, 10, 3), two.search(queries, 10, 3)):
        np.testing.assert_array_equal(a, b)
    c = one.centroids
    assert c.shape == (one.n_lists, DIM)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    other = _core.SearchIndex(col._core, 1, seed=99)  # another seed: other first centroids
    assert not np.array_equal(other.centroids, c)
    assert _core.SearchIndex(col._core, 1, partition="lead_atom").centroids.shape == (0, DIM)


def test_small_nprobe_keeps_recall_on_clustered_data(files, rng):
    """nprobe = 8 of 64 lists keeps recall@10 >= 0.9 of the exhaustive top 10 on clustered data
    (measured 0.96 here; docs/search.md states it)."""
    col = _open(files, "own.smic")
    queries = _queries(rng, 100)
    full = col.search(queries, k=10)
    probed = col.search(queries, k=10, nprobe=8)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(full.positions.tolist(), probed.positions.tolist())])
    assert recall >= 0.9, recall
    one = col.search(queries, k=10, nprobe=1)
    recall_one = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(full.positions.tolist(), one.positions.tolist())])
    assert recall_one < recall  # fewer lists, fewer of the true neighbours: the probe does something
    # Every probed result is a real item with its exact score.
    exact = _exact(col, queries)
    valid = probed.positions >= 0
    np.testing.assert_allclose(probed.scores[valid], np.take_along_axis(exact, np.maximum(probed.positions, 0), 1)[valid],
                               atol=1e-5)


def test_results_do_not_depend_on_threads(files, rng):
    col = _open(files, "own.smic")
    queries = _queries(rng, 19)
    reference = col.search(queries, k=15, n_threads=1)
    for threads in (2, 3, 4, 7):
        for nprobe in (None, 4):
            base = reference if nprobe is None else col.search(queries, k=15, nprobe=nprobe, n_threads=1)
            got = col.search(queries, k=15, nprobe=nprobe, n_threads=threads)
            np.testing.assert_array_equal(got.positions, base.positions)
            np.testing.assert_array_equal(got.scores, base.scores)
            one = col.search(queries[3], k=15, nprobe=nprobe, n_threads=threads)  # one query, items split
            np.testing.assert_array_equal(one.positions[0], base.positions[3])
            np.testing.assert_array_equal(one.scores[0], base.scores[3])
    built = _core.SearchIndex(col._core, 1)  # an index built on one thread is the same index
    positions, scores = built.search(np.ascontiguousarray(queries), 15)
    np.testing.assert_array_equal(positions, reference.positions)


def test_norms_without_the_gram_matrix(files, rng):
    """Large dictionaries take each item's norm from its reconstruction instead of the K x K
    Gram matrix: the same scores."""
    col = _open(files, "paper.smic")
    queries = np.ascontiguousarray(_queries(rng, 5))
    gram = _core.SearchIndex(col._core, 0, 4096).search(queries, 10)
    direct = _core.SearchIndex(col._core, 0, 0).search(queries, 10)
    np.testing.assert_array_equal(gram[0], direct[0])
    np.testing.assert_allclose(gram[1], direct[1], atol=1e-6)


def test_rerank_with_the_refinement_layer(files, rng):
    col = _open(files, "refined.smic")
    queries = _queries(rng, 10)
    exact = _exact(col, queries)  # the refined embeddings
    order = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    everything = col.search(queries, k=10, rerank=len(col))
    np.testing.assert_array_equal(everything.positions, order)
    np.testing.assert_allclose(everything.scores, np.take_along_axis(exact, order, 1), atol=1e-5)
    beyond = col.search(queries, k=10, rerank=10**12)  # more than every item: every item, nothing allocated for more
    np.testing.assert_array_equal(beyond.positions, everything.positions)

    def recall(result):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(order.tolist(), result.positions.tolist())])

    atoms_only, some = col.search(queries, k=10), col.search(queries, k=10, rerank=200)
    assert recall(some) > recall(atoms_only)
    np.testing.assert_allclose(some.scores, np.take_along_axis(exact, some.positions, 1), atol=1e-5)
    # Without rerank, the scores are the atoms' alone: not the refined cosines.
    assert np.abs(atoms_only.scores - np.take_along_axis(exact, atoms_only.positions, 1)).max() > 1e-3


def test_search_sees_appended_items(files, tmp_path, rng):
    path = tmp_path / "grow.smic"
    path.write_bytes((files / "own.smic").read_bytes())
    col = smic.open(path)
    query = _queries(rng, 1)
    before = col.search(query, k=3)
    col.append(np.repeat(query, 2, axis=0) * [[1.0], [2.0]], ids=["q1", "q2"])
    after = col.search(query, k=3)
    assert after.ids[0][:2] == ["q1", "q2"] and after.scores[0, 0] > before.scores[0, 0]
    assert len(search_index(col)) == len(col)


def test_index_memory_is_reported(files):
    col = _open(files, "own.smic")
    info = index_info(col)
    lists = round(len(col) ** 0.5)
    assert info["items"] == len(col) and info["lists"] == lists and info["partition"] == "kmeans"
    assert 1 <= info["terms_per_item"] <= col.dictionary.params.s_max
    # codes (a byte a term), atoms (2 bytes a term), inverse norm and position, the centroids
    per_item = 3 * info["terms_per_item"] + 8 + lists * DIM * 4 / len(col)
    assert per_item <= info["index_bytes_per_item"] <= per_item + 8
    assert info["index_bytes_per_item"] < 4 * DIM / 6  # far below the float32 embedding


def test_k_and_list_shortfalls(files, rng):
    col = _open(files, "shared.smic")
    everything = col.search(_queries(rng, 2), k=10_000)
    assert everything.scores.shape == (2, len(col))  # k is capped at the collection's size
    one_list = col.search(_queries(rng, 2), k=len(col), nprobe=1)
    assert (one_list.positions == -1).any()  # one list holds fewer items than k
    missing = one_list.positions == -1
    assert np.all(one_list.scores[missing] == -np.inf)
    assert all(i is None for row, m in zip(one_list.ids, missing) for i, bad in zip(row, m) if bad)
    assert one_list.to_dicts()[0] and all(d["position"] >= 0 for d in one_list.to_dicts()[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"queries": np.zeros((2, DIM))}, "query 0 is zero"),
    ({"queries": np.ones((2, DIM - 1))}, "dimension 47"),
    ({"queries": np.full((1, DIM), np.nan)}, "NaN"),
    ({"queries": np.ones((0, DIM))}, "no rows"),
    ({"queries": np.ones((2, DIM), dtype=np.int64)}, "float32 or float64"),
    ({"queries": np.ones((2, 2, DIM))}, "2-dimensional"),
    ({"queries": np.ones((1, DIM)), "k": 0}, "k must be >= 1"),
    ({"queries": np.ones((1, DIM)), "k": 2.5}, "k must be an integer"),
    ({"queries": np.ones((1, DIM)), "nprobe": 0}, "nprobe must be >= 1"),
    ({"queries": np.ones((1, DIM)), "rerank": 10}, "no refinement layer"),
    ({"queries": np.ones((1, DIM)), "n_threads": 0}, "n_threads"),
    ({"queries": np.ones((1, DIM)), "partition": "atoms"}, "partition must be"),
    ({"queries": np.ones((1, DIM)), "n_lists": 0}, "n_lists must be >= 1"),
    ({"queries": np.ones((1, DIM)), "n_lists": 10**6}, "at most the number of items"),
])
def test_bad_arguments(files, kwargs, match):
    col = _open(files, "own.smic")
    with pytest.raises(ValueError, match=match):
        col.search(**kwargs)


def test_core_checks_its_inputs(files):
    col = _open(files, "own.smic")
    with pytest.raises(ValueError, match="partition must be"):
        _core.SearchIndex(col._core, partition="ivf")
    with pytest.raises(ValueError, match="iterations"):
        _core.SearchIndex(col._core, iterations=0)
    with pytest.raises(ValueError, match="at most the number of items"):
        _core.SearchIndex(col._core, n_lists=len(col) + 1)
    index = search_index(col)
    with pytest.raises(ValueError, match="dtype"):
        index.search(np.ones((1, DIM)), 3)  # float64 reaches the core only through the wrapper
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones((1, 5), np.float32), 3)
    with pytest.raises(ValueError, match="zero"):
        index.search(np.zeros((1, DIM), np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones((1, DIM), np.float32), 0)
    with pytest.raises(ValueError, match="refinement"):
        index.search(np.ones((1, DIM), np.float32), 3, 0, 5)
    with pytest.raises(ValueError, match="C-contiguous"):
        index.search(np.ones((DIM, 2), np.float32).T, 3)


def test_damaged_collections_search_or_raise_format_error(tmp_path):
    """2,000 mutations (half with repaired CRCs) of a small plain and a small refined collection:
    building the index and searching either works, and then scores the decoded items, or raises
    FormatError; never a crash or another error."""
    from test_fuzz_files import _mutate

    rng = np.random.default_rng(99)
    e = clustered(rng, 60)
    smic.compress(e, tmp_path / "plain.smic", n_atoms=8, n_nonzero=3, n_iter=2, chunk_size=8)
    smic.compress(e, tmp_path / "refined.smic", n_atoms=8, n_iter=2, chunk_size=8, residual_step=0.1)
    queries = clustered(rng, 3)
    path = tmp_path / "m.smic"
    raised = searched = 0
    for name in ("plain.smic", "refined.smic"):
        original = (tmp_path / name).read_bytes()
        for _ in range(1000):
            path.write_bytes(_mutate(rng, original))
            try:
                col = smic.open(path)
                rerank = len(col) if col.residual_step is not None and len(col) else None
                result = col.search(queries, k=5, rerank=rerank)
                exact = _exact(col, queries)
            except smic.FormatError:
                raised += 1
                continue
            except ValueError as error:  # an empty collection after the damage is the one other answer
                assert "empty" in str(error)
                continue
            searched += 1
            valid = result.positions >= 0
            np.testing.assert_allclose(result.scores[valid],
                                       np.take_along_axis(exact, np.maximum(result.positions, 0), 1)[valid], atol=1e-4)
    assert raised > 1000 and searched >= 5  # most damage is caught by a CRC or a header check
