"""Fitted maps that place new points, a memory-bounded trustworthiness, k-NN code quality, the CSV export,
sampled encodings, code-versus-pixel retrieval and the map figure."""
import csv
import io

import numpy as np
import pytest
import torch
from sklearn import manifold

import aecore as ae
from aecore import projection, viz
from aecore.latent import encode_sample, retrieval
from conftest import MNIST, ROOT


@pytest.fixture(scope="module")
def model(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, model=dict(code_size=6, hidden=(64,)),
                                       train=dict(epochs=8, lr=3e-3, batch_size=64))
    model = ae.build_model(model_spec)
    ae.fit(model, train, val, train_spec)
    return model


def test_pca_map_places_its_own_points_where_they_are(digits):
    x = digits.images[:400].flatten(1)
    fitted, coords = projection.fit_projection(x, "pca", 3)
    assert coords.shape == (400, 3) and coords.dtype == np.float32
    assert np.allclose(projection.place(fitted, x[:20]), coords[:20], atol=1e-4)
    assert np.allclose(coords, ae.project(x, "pca", 3), atol=1e-5)


def test_a_code_no_wider_than_the_map_is_drawn_as_is():
    codes = torch.randn(50, 2)
    fitted, coords = projection.fit_projection(codes, "pca", 3)
    assert np.allclose(coords[:, :2], codes.numpy()) and np.all(coords[:, 2] == 0)
    assert np.allclose(projection.place(fitted, codes[:3]), coords[:3])


def test_tsne_reports_progress_and_places_a_known_point_near_itself(digits):
    x = digits.images[:500].flatten(1)
    seen = []
    fitted, coords = projection.fit_projection(x, "tsne", 2, progress=seen.append, perplexity=20)
    assert coords.shape == (500, 2) and np.isfinite(coords).all()
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 10
    assert ae.trustworthiness(x, coords) > 0.9
    spread = np.linalg.norm(coords - coords.mean(0), axis=1).mean()
    placed = projection.place(fitted, x[:10])
    assert placed.shape == (10, 2)
    # a copy of a mapped image lands beside the original (openTSNE optimises it against the fixed map)
    assert np.median(np.linalg.norm(placed - coords[:10], axis=1)) < 0.2 * spread
    before = len(seen)  # placing new points reports nothing into the finished fit's display
    projection.place(fitted, x[10:12])
    assert len(seen) == before


def test_umap_map_places_new_points(digits):
    x = digits.images[:300].flatten(1)
    fitted, coords = projection.fit_projection(x, "umap", 2, n_neighbors=10, min_dist=0.2)
    placed = projection.place(fitted, digits.images[300:305].flatten(1))
    assert coords.shape == (300, 2) and placed.shape == (5, 2) and np.isfinite(placed).all()


def test_project_clamps_neighbourhoods_to_tiny_samples():
    x = torch.randn(12, 5)
    assert projection.fit_projection(x, "tsne", 2, perplexity=50)[1].shape == (12, 2)
    with pytest.raises(ValueError, match="at least 3"):
        projection.fit_projection(x[:2], "pca")
    with pytest.raises(ValueError, match="n_components"):
        projection.fit_projection(x, "pca", 4)
    assert projection.fit_projection(x[:5], "umap", 3)[1].shape == (5, 3)
    with pytest.raises(ValueError, match="at least 5"):  # UMAP's spectral start needs more points than that
        projection.fit_projection(x[:4], "umap", 3)


def test_umap_keeps_digit_neighbourhoods(digits):
    x = digits.images[:1000].flatten(1)
    assert projection.trustworthiness(x, projection.project(x, "umap"), k=5) > 0.95


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_chunked_trustworthiness_equals_scikit_learns(chunk):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10)).astype(np.float32)
    for y in (x[:, :2], x[:, :2] + rng.normal(scale=0.5, size=(300, 2)), rng.normal(size=(300, 2))):
        for k in (1, 5, 12):
            assert projection.trustworthiness_chunked(x, y, k, chunk) == pytest.approx(ae.trustworthiness(x, y, k),
                                                                                        abs=1e-9)
    with pytest.raises(ValueError, match="k"):
        projection.trustworthiness_chunked(x[:10], x[:10, :2], k=5)


def test_code_quality_compares_codes_pixels_and_pca_on_the_same_images(digits, model):
    s = encode_sample(model, digits, 1000)
    q = projection.code_quality(s["codes"], digits.images[s["index"]], digits.labels[s["index"]])
    assert q["dims"] == 6 and q["points"] == 1000
    assert 0.6 < q["codes"] <= 1 and 0.9 < q["pixels"] <= 1 and 0 < q["pca"] <= 1
    # codes that are the PCA of the pixels score exactly what the PCA baseline scores
    pca = ae.project(digits.images[:600].flatten(1), "pca", 2)
    same = projection.code_quality(pca, digits.images[:600], digits.labels[:600])
    assert same["codes"] == pytest.approx(same["pca"], abs=0.02)
    capped = projection.code_quality(s["codes"], digits.images[s["index"]], digits.labels[s["index"]], max_points=300)
    assert capped["points"] == 300


def test_map_csv_has_one_row_per_point_and_quotes_names():
    coords, codes = np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((3, 4))
    text = projection.map_csv([10, 11, 12], coords, codes, labels=[0, 1, 0], classes=["a, b", "c"],
                              errors=[0.1, 0.2, 0.3], factors={"scale": np.array([0.5, 1.0, 0.75])})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    assert list(rows[0]) == ["index", "label", "class", "reconstruction_mse", "factor_scale", "x", "y",
                             "code_0", "code_1", "code_2", "code_3"]
    assert rows[0]["class"] == "a, b" and rows[1]["class"] == "c" and rows[2]["index"] == "12"
    assert float(rows[2]["x"]) == 4 and float(rows[1]["factor_scale"]) == 1.0
    bare = projection.map_csv([0], np.zeros((1, 3)), np.zeros((1, 1)))
    assert bare.splitlines()[0] == "index,x,y,z,code_0"


def test_encode_sample_is_a_fixed_sorted_sample_with_its_errors(digits, model):
    a, b = encode_sample(model, digits, 300), encode_sample(model, digits, 300)
    assert torch.equal(a["index"], b["index"]) and len(a["index"]) == 300
    assert torch.all(a["index"][1:] > a["index"][:-1])
    x = digits.images[a["index"]]
    assert torch.allclose(a["codes"], ae.encode_dataset(model, x))
    assert torch.allclose(a["errors"], ae.mse(x, ae.reconstruct(model, x)), atol=1e-6)
    everything = encode_sample(model, digits, 10_000)
    assert torch.equal(everything["index"], torch.arange(len(digits)))


def test_retrieval_leaves_the_point_out_and_counts_shared_labels(digits, model):
    s = encode_sample(model, digits, 800)
    images, labels = digits.images[s["index"]], digits.labels[s["index"]]
    found = retrieval(s["codes"], images, 3, 8, labels)
    assert found["code"].shape == (8,) and found["pixel"].shape == (8,)
    assert 3 not in found["code"].tolist() and 3 not in found["pixel"].tolist()
    assert torch.equal(found["code"], ae.neighbours(s["codes"], s["codes"][3:4], 9)[0][1:])
    assert found["pixel_same"] == int((labels[found["pixel"]] == labels[3]).sum())
    many = [retrieval(s["codes"], images, i, 8, labels) for i in range(0, 800, 40)]
    assert np.mean([f["code_same"] for f in many]) > 4  # a trained code keeps most neighbours in their class
    assert "code_same" not in retrieval(s["codes"], images, 0, 3)


def test_projection_figure_carries_each_points_row(digits):
    coords = np.random.default_rng(0).normal(size=(200, 2))
    labels = digits.labels[:200].numpy()
    fig = viz.projection_figure(coords, labels=labels, classes=digits.classes, index=np.arange(200) + 1000,
                                hover={"error": np.linspace(0, 1, 200)}, marks={"your image": [[0.0, 0.0]]})
    points = [t for t in fig.data if t.name != "your image"]
    rows = np.sort(np.concatenate([np.asarray(t.customdata) for t in points]))
    assert np.array_equal(rows, np.arange(200)) and len(points) == len(np.unique(labels))
    for t in points:
        assert np.allclose(np.c_[t.x, t.y], coords[np.asarray(t.customdata)])
        assert all(s.startswith(f"image #{1000 + r}") for s, r in zip(t.text, t.customdata))
    star = next(t for t in fig.data if t.name == "your image")
    assert list(star.customdata) == [-1] and star.marker.symbol == "star"
    three = viz.projection_figure(np.c_[coords, coords[:, 0]], values=np.arange(200.0), value_name="scale")
    assert three.data[0].type == "scatter3d" and three.data[0].marker.colorbar.title.text == "scale"
    assert three.data[0].marker.cmin == pytest.approx(np.percentile(np.arange(200.0), 1))


def test_projection_figure_draws_the_selected_rows_as_selected(digits):
    """Rows picked on an earlier chart come back as each trace's own positions; no pick leaves every trace as is."""
    coords = np.random.default_rng(1).normal(size=(120, 2))
    labels = digits.labels[:120].numpy()
    chosen = [3, 40, 41, 119]
    fig = viz.projection_figure(coords, labels=labels, classes=digits.classes, selected=chosen)
    *points, ring = fig.data
    back = sorted(int(t.customdata[i]) for t in points for i in t.selectedpoints)
    assert back == chosen
    # a few kept points get a ring each, which no click or hover reaches, so that one point stands out in any colouring
    assert ring.marker.symbol == "circle-open" and ring.hoverinfo == "skip"
    np.testing.assert_allclose(np.c_[ring.x, ring.y], coords[chosen])
    unpicked = viz.projection_figure(coords, labels=labels, selected=[]).data
    assert all(t.selectedpoints is None and t.name != "selected" for t in unpicked)
    many = viz.projection_figure(coords, values=np.arange(120.0), selected=range(viz.RINGED_SELECTION + 1))
    assert [t.name for t in many.data] == ["value"]  # a lasso's group: its points stand out already, no rings
    three = viz.projection_figure(np.c_[coords, coords[:, 0]], values=np.arange(120.0), selected=chosen)
    assert "selectedpoints" not in three.data[0].to_plotly_json() and len(three.data) == 1  # no selection in 3-D
    # the Latent page selects by box and lasso too: the map's toolbar keeps those tools that other charts drop
    assert not set(viz.SELECTION_BUTTONS) & set(fig.layout.modebar.remove)
    assert set(viz.SELECTION_BUTTONS) <= set(viz.loss_figure([]).layout.modebar.remove)


def test_tsne_keeps_neighbourhoods_as_well_as_scikit_learns_on_mnist_codes():
    """The t-SNE target: within 0.01 of scikit-learn's TSNE in trustworthiness (k=5), on real codes."""
    model = ae.load(ROOT / "pretrained" / "mnist-conv-z32.safetensors")
    codes = ae.encode_dataset(model, ae.load_dataset(f"idx:{MNIST}", "all").images[:1000]).numpy()
    ours = ae.trustworthiness(codes, ae.project(codes, "tsne"), k=5)
    theirs = ae.trustworthiness(codes, manifold.TSNE(random_state=0, init="pca").fit_transform(codes), k=5)
    assert ours >= theirs - 0.01 and ours > 0.95


def test_umap_maps_with_exact_neighbours_and_places_codes_where_they_are(digits):
    """UMAP gets each code's exact neighbours and an exact index to place new codes with (aecore.projection's
    ExactNeighbours), so numba never compiles pynndescent's NN-descent: most of the server's UMAP warm-up."""
    import pynndescent

    x = digits.images[:400].flatten(1).numpy()
    fitted, coords = projection.fit_projection(x, "umap", 2)
    brute = np.sort(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)), axis=1)[:, :15]
    assert np.allclose(fitted._knn_dists, brute, atol=1e-4)
    placed = projection.place(fitted, x[:20])
    assert np.median(np.linalg.norm(placed - coords[:20], axis=1)) < 0.1 * coords.std(0).mean()
    assert not pynndescent.pynndescent_.nn_descent.signatures
