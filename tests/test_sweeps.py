"""Unit tests of aecore.sweeps and of the VAE-lab helpers appended to aecore.latent and aecore.viz."""
import io
import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from plotly.colors import hex_to_rgb, unlabel_rgb
from skimage.color import deltaE_ciede2000, rgb2lab

import aecore as ae
from aecore import latent, sweeps, viz


@pytest.fixture(scope="module")
def tiny_vae():
    ds = ae.load_dataset("digits")
    train, val = ds.split(0.9, seed=0)
    spec, tspec = ae.preset("vae", ds.shape, model={"code_size": 2},
                           train={"epochs": 5, "batch_size": 32, "lr": 3e-3})
    model = ae.build_model(spec)
    ae.fit(model, train, val, tspec)
    return model


@pytest.fixture(scope="module")
def tiny_ae():
    ds = ae.load_dataset("digits")
    train, val = ds.split(0.9, seed=0)
    spec, tspec = ae.preset("deep", ds.shape, model={"code_size": 8}, train={"epochs": 8, "batch_size": 32})
    model = ae.build_model(spec)
    ae.fit(model, train, val, tspec)
    return model


# ---- sweeps -------------------------------------------------------------------------------------------------------

def test_holdout_is_the_apps_split_capped(digits):
    train, test = sweeps.holdout(digits, max_train=300, max_test=50)
    full_train, full_test = digits.split(0.9, seed=0)
    assert len(train) == 300 and len(test) == 50
    assert torch.equal(train.images, full_train.images[:300])
    assert torch.equal(test.images, full_test.images[:50])
    train, test = sweeps.holdout(digits)
    assert len(train) + len(test) == len(digits)


def test_code_sizes_for_keeps_codes_no_larger_than_the_image():
    assert sweeps.code_sizes_for((1, 8, 8), "deep") == [k for k in sweeps.CODE_SIZES if k <= 64]
    assert 128 in sweeps.code_sizes_for((1, 8, 8), "sparse")  # a sparse code may be overcomplete


def test_code_size_jobs_are_unstarted_one_per_size(digits_split):
    train, val = digits_split
    small = train.subset(slice(0, 20))
    jobs = sweeps.code_size_jobs("deep", "digits", small, val, [8, 2, 8], epochs=3)
    assert list(jobs) == [2, 8]
    assert all(j.status == "queued" and not j._thread.is_alive() for j in jobs.values())
    assert [j.model_spec.code_size for j in jobs.values()] == [2, 8]
    assert all(j.train_spec.epochs == 3 and j.train_spec.batch_size == 20 for j in jobs.values())
    assert jobs[2].name == "sweep deep z2"
    assert sweeps.code_size_jobs("deep", "digits", small, val, [4], prefix="sweep 7")[4].name == "sweep 7 deep z4"
    with pytest.raises(ValueError, match="Code size 100"):
        sweeps.code_size_jobs("deep", "digits", small, val, [100])


def test_a_sweep_trains_and_measures_each_code_size(digits_split):
    train, val = digits_split
    jobs = sweeps.code_size_jobs("deep", "digits", train.subset(slice(0, 200)), val, [2, 16], epochs=2)
    for job in jobs.values():
        job.start()
    for job in jobs.values():
        job.join()
    errors = {k: sweeps.heldout_mse(j.model, val) for k, j in jobs.items()}
    assert all(j.status == "done" for j in jobs.values())
    assert all(0 < e < 0.2 for e in errors.values())


def test_heldout_mse_is_the_mean_per_pixel_error(tiny_ae, digits_split):
    _, val = digits_split
    out = ae.reconstruct(tiny_ae, val.images)
    assert sweeps.heldout_mse(tiny_ae, val) == pytest.approx(float(((out - val.images) ** 2).mean()), rel=1e-5)
    assert sweeps.heldout_mse(tiny_ae, val) == pytest.approx(ae.evaluate(tiny_ae, val)["mse"], rel=1e-5)


def test_pca_curve_falls_with_the_code_size_to_zero(digits_split):
    train, val = digits_split
    curve = sweeps.pca_curve(train, val, [1, 4, 16, 64])
    assert curve == sorted(curve, reverse=True)
    assert curve[0] == pytest.approx(ae.pca_mse(train.images, val.images, 1))
    assert curve[-1] < 1e-8  # all 64 components rebuild every pixel


def test_code_size_rows_compare_each_size_with_pca():
    rows = sweeps.code_size_rows([2, 8], {2: 0.03}, [0.06, 0.02], 64)
    assert rows[0] == {"code size": 2, "compression": 32.0, "autoencoder MSE": 0.03, "PCA MSE": 0.06,
                       "autoencoder / PCA": 0.5}
    assert rows[1]["autoencoder MSE"] is None and rows[1]["autoencoder / PCA"] is None
    assert sweeps.code_size_rows([64], {64: 0.01}, [0.0], 64)[0]["autoencoder / PCA"] is None


def test_noise_jobs_train_a_denoiser_and_a_plain_twin(digits_split):
    train, val = digits_split
    jobs = sweeps.noise_jobs("deep", "digits", train, val, "masking", 0.4, code_size=12, epochs=2)
    assert list(jobs) == ["denoising (masking 0.4)", "plain (no noise)"]
    noisy, plain = jobs.values()
    assert (noisy.train_spec.noise, noisy.train_spec.noise_level) == ("masking", 0.4)
    assert (plain.train_spec.noise, plain.train_spec.noise_level) == ("none", 0.0)
    assert noisy.model_spec == plain.model_spec and noisy.model_spec.code_size == 12
    assert list(sweeps.noise_jobs("deep", "digits", train, val, "gaussian", 0.2, plain=False)) == [
        "denoising (gaussian 0.2)"]


def test_noisy_inputs_are_the_same_for_a_seed(digits):
    x = digits.images[:20]
    assert torch.equal(sweeps.noisy_inputs(x, "gaussian", 0.3, 5), sweeps.noisy_inputs(x, "gaussian", 0.3, 5))
    assert not torch.equal(sweeps.noisy_inputs(x, "gaussian", 0.3, 5), sweeps.noisy_inputs(x, "gaussian", 0.3, 6))
    assert torch.equal(sweeps.noisy_inputs(x, "gaussian", 0.0), x)


def test_noise_curves_rise_with_the_level(tiny_ae, digits_split):
    _, val = digits_split
    curves = sweeps.noise_curves({"ae": tiny_ae}, val, "gaussian", [0.0, 0.2, 0.5])
    assert list(curves) == ["noisy input", "ae"]
    assert curves["noisy input"][0] == 0.0
    assert curves["noisy input"] == sorted(curves["noisy input"])
    assert curves["ae"][0] == pytest.approx(sweeps.heldout_mse(tiny_ae, val), rel=1e-5)
    assert curves["ae"][2] < curves["noisy input"][2]  # even a plain model removes much strong noise


def test_compare_models_measures_every_model_on_the_same_images(tiny_ae, tiny_vae, digits):
    x = digits.images[:30]
    rows, outputs = sweeps.compare_models({"a": tiny_ae, "v": tiny_vae}, x)
    assert [r["model"] for r in rows] == ["a", "v"]
    assert rows[0]["code size"] == 8 and rows[1]["code size"] == 2
    assert rows[0]["parameters"] == tiny_ae.spec.param_count()
    assert rows[0]["MSE"] == pytest.approx(float(ae.mse(outputs["a"], x).mean()))
    assert rows[0]["PSNR (dB)"] == pytest.approx(float(ae.psnr(outputs["a"], x).mean()), rel=1e-5)
    assert -1 <= rows[1]["SSIM"] <= 1
    assert "variational" in rows[1]["type"] and "dense 256-128" in rows[0]["type"]
    noisy = sweeps.noisy_inputs(x, "gaussian", 0.5)
    noisy_rows, _ = sweeps.compare_models({"a": tiny_ae}, x, noisy)
    assert noisy_rows[0]["MSE"] > rows[0]["MSE"]


def test_describe_names_arch_layers_and_options():
    assert sweeps.describe(ae.ModelSpec((1, 8, 8), "dense", 4, (), None)) == "dense no hidden layer · linear"
    assert sweeps.describe(ae.ModelSpec((1, 8, 8), "conv", 4, (16, 32), bottleneck="variational",
                                        beta=4.0)) == "conv 16-32 · variational β=4"
    assert "sparse (l1)" in sweeps.describe(ae.ModelSpec((1, 8, 8), "dense", 64, (32,), sparsity="l1"))


# ---- latent helpers -----------------------------------------------------------------------------------------------

def test_crossfade_blends_pixels_from_one_image_to_the_other(digits):
    x0, x1 = digits.images[0], digits.images[1]
    fade = latent.crossfade(x0, x1, 5)
    assert fade.shape == (5, *x0.shape)
    assert torch.equal(fade[0], x0) and torch.allclose(fade[-1], x1)
    assert torch.allclose(fade[2], (x0 + x1) / 2)


def test_decode_codes_takes_one_code_or_many(tiny_vae):
    one = latent.decode_codes(tiny_vae, torch.zeros(2))
    many = latent.decode_codes(tiny_vae, torch.zeros(3, 2))
    assert one.shape == (1, 1, 8, 8) and many.shape == (3, 1, 8, 8)
    assert torch.allclose(one[0], many[2])
    assert torch.allclose(one, tiny_vae.decode(torch.zeros(1, 2)).detach())


def test_rank_by_kl_and_posterior_health():
    kl = torch.tensor([0.5, 0.001, 2.0, 0.5])
    assert latent.rank_by_kl(kl) == [2, 0, 3, 1]
    assert latent.posterior_health(kl) == {"active": 3, "dims": 4, "total": pytest.approx(3.001),
                                           "collapsed": False}
    assert latent.posterior_health(torch.full((4,), 0.005))["collapsed"]  # no unit above the threshold
    assert latent.posterior_health(torch.tensor([0.05, 0.0]))["collapsed"]  # one weak unit, next to nothing in all


def test_the_real_vae_is_healthy(tiny_vae, digits):
    health = latent.posterior_health(ae.kl_per_dimension(tiny_vae, digits))
    assert health["active"] == 2 and not health["collapsed"]


def test_prior_grid_reads_like_a_picture():
    codes = latent.prior_grid(3, n=3, dims=(2, 0), base=torch.tensor([9.0, 9.0, 9.0]))
    q = 1.6448536  # the 95% quantile of N(0, 1)
    assert codes.shape == (9, 3)
    assert torch.allclose(codes[0], torch.tensor([q, 9.0, -q]), atol=1e-5)  # top left: high dims[1], low dims[0]
    assert torch.allclose(codes[8], torch.tensor([-q, 9.0, q]), atol=1e-5)  # bottom right
    assert torch.allclose(codes[4], torch.tensor([0.0, 9.0, 0.0]), atol=1e-5)
    with pytest.raises(ValueError, match="dims"):
        latent.prior_grid(2, dims=(0, 0))
    with pytest.raises(ValueError, match="dims"):
        latent.prior_grid(1)


def test_manifold_decodes_the_grid(tiny_vae):
    grid = latent.manifold(tiny_vae, n=4)
    assert grid.shape == (16, 1, 8, 8)
    assert torch.allclose(grid, latent.decode_codes(tiny_vae, latent.prior_grid(2, 4)))
    assert not torch.allclose(grid[0], grid[-1])


def test_map_2d_keeps_small_codes_and_projects_large_ones_consistently():
    small = torch.randn(50, 2)
    xy, extra = latent.map_2d(small, small[:3])
    assert np.allclose(xy, small.numpy()) and np.allclose(extra, small[:3].numpy())
    one = latent.map_2d(torch.randn(10, 1))[0]
    assert one.shape == (10, 2) and np.all(one[:, 1] == 0)
    wide = torch.randn(200, 6) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    xy, extra = latent.map_2d(wide, wide[10:15])
    assert xy.shape == (200, 2) and np.allclose(extra, xy[10:15], atol=1e-5)
    assert xy[:, 0].var() > xy[:, 1].var() > wide[:, 2].var().item()  # the two widest directions, widest first
    again, = latent.map_2d(wide)
    assert np.allclose(again, xy)


# ---- viz helpers --------------------------------------------------------------------------------------------------

def test_gif_bytes_loops_there_and_back(digits):
    data = viz.gif_bytes(digits.images[:5], duration_ms=80, cell=32)
    assert data[:6] in (b"GIF87a", b"GIF89a")
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 8 and gif.size == (32, 32)
    assert gif.info.get("loop") == 0
    assert Image.open(io.BytesIO(viz.gif_bytes(digits.images[:5], boomerang=False))).n_frames == 5


def test_png_bytes_round_trips_a_picture(digits):
    picture = viz.tile(digits.images[:4], ncols=2, cell=16)
    back = np.asarray(Image.open(io.BytesIO(viz.png_bytes(picture))))
    assert np.array_equal(back, picture)


def test_kl_figure_sorts_and_greys_inactive_dimensions():
    fig = viz.kl_figure(torch.tensor([0.2, 0.001, 1.5]), threshold=0.01)
    bar = fig.data[0]
    assert list(bar.x) == ["z3", "z1", "z2"]
    assert np.allclose(bar.customdata, [1.5, 0.2, 0.001])
    assert bar.marker.color[2] == "#BBBBBB" and bar.marker.color[0] != "#BBBBBB"
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.template.layout.plot_bgcolor == "white"  # plotly_white, the default viz sets once


def test_latent_map_figure_carries_indices_paths_and_marks():
    xy = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.arange(30) % 3
    fig = viz.latent_map_figure(xy, labels, ["a", "b", "c"], index=np.arange(100, 130),
                                paths={"linear path": xy[:4]}, marks={"A": xy[0], "B": xy[3]})
    points = [t for t in fig.data if t.customdata is not None]
    assert [t.name for t in points] == ["a", "b", "c"]
    assert sorted(np.concatenate([t.customdata for t in points]).tolist()) == list(range(100, 130))
    assert any(t.name == "linear path" and len(t.x) == 4 for t in fig.data)
    assert sum(1 for t in fig.data if t.text is not None and t.text[0] in "AB") == 2


def test_sweep_figure_has_a_log_axis_at_the_swept_values_and_a_mark():
    fig = viz.sweep_figure([2, 4, 8], {"model": [0.1, None, 0.05], "pca": [0.2, 0.1, 0.05]}, "code", "mse",
                           mark=(4, "here"))
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [2, 4, 8]
    assert [t.name for t in fig.data] == ["model", "pca"]
    assert fig.layout.shapes[0].x0 == 4
    assert viz.sweep_figure([0, 0.5], {"a": [1, 2]}, "x", "y", log_x=False).layout.xaxis.type is None


@pytest.mark.parametrize("epochs, step", [(2, 1), (10, 1), (35, 4), (100, 10)])
def test_loss_figure_ticks_whole_epochs(epochs, step):
    history = [{"epoch": e, "train": {"total": 1.0 / e}, "val": {"total": 1.2 / e}} for e in range(1, epochs + 1)]
    axis = viz.loss_figure(history).layout.xaxis
    assert axis.dtick == step and axis.tick0 == 1  # never ticks between epochs, never more than about ten
    first, last = axis.range
    assert first < 1 and epochs < last < epochs + 1  # every epoch in view, no tick for one that never ran


def test_loss_figure_draws_the_total_under_the_terms_that_make_it_up():
    # a VAE's total runs close to its reconstruction term on a log axis: drawn last, it hid that line
    history = [{"epoch": e, "train": {"reconstruction": 100.0 - e, "kl": 5.0, "total": 105.0 - e}} for e in (1, 2)]
    fig = viz.loss_figure(history)
    assert [t.name for t in fig.data] == ["total (train)", "reconstruction (train)", "kl (train)"]
    assert fig.data[0].line.width == 6 and fig.data[0].opacity < 1 and fig.data[1].line.width is None
    assert [t.line.color for t in fig.data] == [viz.PALETTE[2], viz.PALETTE[0], viz.PALETTE[1]]  # colours by term
    alone = viz.loss_figure([{"epoch": 1, "train": {"total": 3.0}}]).data[0]
    assert alone.line.width is None and alone.opacity == 1  # a lone total is an ordinary line


def test_the_ten_class_colours_are_told_apart():
    # CIEDE2000 between every pair of the first ten colours (a digit data set's classes); under about 10 two classes
    # look alike on a map (the palette's 5th and 9th were 8 apart: two light blues)
    labs = [rgb2lab(np.array(hex_to_rgb(c) if c.startswith("#") else unlabel_rgb(c))[None, None] / 255)[0, 0]
            for c in viz.PALETTE[:10]]
    closest = min(deltaE_ciede2000(a, b) for a, b in itertools.combinations(labs, 2))
    assert closest > 15
