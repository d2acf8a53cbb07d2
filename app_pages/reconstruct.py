"""Reconstruct: inputs beside their reconstructions and signed errors, worst first, your own images, other data."""
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

import aecore as ae
from aecore import viz
from aecore.images import FrameStyle, canvas_to_tensor, frame_style, image_to_tensor, resize_batch
from aecore.metrics import fingerprint, percentile_of
from app_pages.common import (METRIC_WIDTH, as_text, data_key, dataset_family, load_dataset, require_model,
                               wrapping_columns, wrapping_row)

SAMPLE = 2000  # images scored per data set: all of digits, an evenly spaced sample of larger sets
PER_ROW = 8
CELL = 96  # pixels per image in the grids: 8×8 digits at 12× and 32×32 sprites at 3×, crisp
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "ppm", "pgm", "pbm", "ico"]
ORDERS = {"data set order": None, "worst first": True, "best first": False}
ERROR_LEGEND = ("Error map: **red** where the reconstruction is brighter than the input, **blue** where it is "
                "darker, white where they agree.")
METRIC_HELP = {
    "MSE": "Mean squared error per pixel: 0 is a perfect copy.",
    "PSNR": "Peak signal-to-noise ratio in dB: higher is better; above about 20 dB the copy looks close.",
    "SSIM": "Structural similarity: 1 means the same strokes and shapes; it follows what people notice.",
}


def sample_index(n: int) -> torch.Tensor:
    """Return evenly spaced image numbers, at most SAMPLE of them."""
    return torch.arange(0, n, max(1, -(-n // SAMPLE)))


# Cache keys: aecore.metrics.fingerprint(model), a hash of the model's spec and weights, plus the data set's name.
# id(model) alone could be reused by a new model once an old one is freed; hashing these small models' weights
# takes milliseconds. The model and the data set themselves are passed with a leading underscore, unhashed.
@st.cache_data(max_entries=16, ttl=3600, show_spinner="Reconstructing the data set and scoring every image…")
def scores(_model, model_key: str, _dataset, dataset_name: str) -> dict:
    """Return the scored image numbers and their MSE, PSNR and SSIM."""
    index = sample_index(len(_dataset))
    x = _dataset.images[index]
    return {"index": index, **ae.image_metrics(x, ae.reconstruct(_model, x))}


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Fitting the other data set to the model and scoring it…")
def foreign_scores(_model, model_key: str, _dataset, dataset_name: str, shape: tuple, style: FrameStyle) -> dict:
    """Return a sample of another data set framed like the model's images, its reconstructions and their metrics."""
    x = resize_batch(_dataset.images[sample_index(len(_dataset))[:500]], shape, style)
    y = ae.reconstruct(_model, x)
    return {"inputs": x, "outputs": y, **ae.image_metrics(x, y)}


@st.cache_data(max_entries=16, ttl=3600)
def style_of(_dataset, dataset_name: str) -> FrameStyle:
    """Return how the data set's images sit in their frame (background, size of the content)."""
    return frame_style(_dataset.images)


def label_of(ds: ae.ImageDataset, i: int) -> str:
    """Return the class name of image i, or '' when the data set has no labels."""
    return ds.classes[int(ds.labels[i])] if ds.labels is not None and ds.classes else ""


def show_grid(model, ds, numbers: torch.Tensor, per_image: dict) -> None:
    """Draw the chosen images as columns of input, reconstruction and error, with their numbers below."""
    x = ds.images[numbers]
    y = ae.reconstruct(model, x)
    names = [label_of(ds, int(i)) for i in numbers]
    captions = [f"#{int(i)}" + (f" · {name}" if name else "") + f"\n{psnr:.1f} dB"
                for i, name, psnr in zip(numbers, names, per_image["psnr"].tolist())]
    st.html(viz.picture_grid_html(viz.stacked(x, y, viz.error_rgb(y - x), cell=CELL), captions, per_row=PER_ROW))


def grid_tab(model, ds, s: dict) -> None:
    """Draw the grid of inputs, reconstructions and errors, in data set order, worst first or best first."""
    st.markdown("Each column is one image: the **input** on top, the model's **reconstruction** in the middle and "
                "their **difference** below. " + ERROR_LEGEND)
    controls = wrapping_row(gap="small")
    order = controls.segmented_control("Order", list(ORDERS), default="data set order", key="rec_order",
                                   help="Worst first is the anomaly-detection view: the images this model finds "
                                        "hardest to copy are the ones least like what it learnt.") or "data set order"
    count = controls.select_slider("Images shown", [8, 16, 24, 32, 48], value=16, key="rec_count", width=160)
    classes = ["every class", *ds.classes] if ds.labels is not None and ds.classes else ["every class"]
    only = controls.selectbox("Class", classes, key=data_key("rec_class"), width=150)
    keep = torch.arange(len(s["index"]))
    if only != "every class":
        keep = keep[ds.labels[s["index"]] == ds.classes.index(only)]
    if ORDERS[order] is not None:
        keep = keep[s["mse"][keep].argsort(descending=ORDERS[order])]
    start = controls.number_input("Starting at", 0, len(s["index"]) - 1, 0, step=count, key=data_key("rec_start"),
                                  width=150, help="Page through the images: the position in the current order.")
    shown = keep[start:start + count]
    if len(shown) == 0:
        st.info("No image to show here: pick another class or start earlier.")
        return
    show_grid(model, ds, s["index"][shown], {k: s[k][shown] for k in ("mse", "psnr", "ssim")})
    table = {"image": s["index"][shown].tolist(), "class": [label_of(ds, int(i)) for i in s["index"][shown]],
             "MSE": s["mse"][shown].tolist(), "PSNR (dB)": s["psnr"][shown].tolist(),
             "SSIM": s["ssim"][shown].tolist()}
    if ORDERS[order] is not None:
        ranked_of(s, keep, shown, start, only, worst=ORDERS[order])
    with st.expander("The numbers of the images shown", expanded=ORDERS[order] is not None):
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"MSE": st.column_config.NumberColumn(format="%.4f"),
                                    "PSNR (dB)": st.column_config.NumberColumn(format="%.1f"),
                                    "SSIM": st.column_config.NumberColumn(format="%.3f")})


def ranked_of(s: dict, keep: torch.Tensor, shown: torch.Tensor, start: int, only: str, worst: bool) -> None:
    """Say which of the hardest (or best-copied) images are shown (of which class, from which place) and where they
    lie among the PSNRs of the images they were picked from."""
    among = "" if only == "every class" else f" of class {as_text(only)}"
    kind = "hardest images" if worst else "best-copied images"
    what = (f"The {len(shown)} {kind}{among}" if start == 0 else
            f"The {kind}{among}, places {start + 1:,} to {start + len(shown):,},")
    why = ("An autoencoder used as an anomaly detector flags the hardest: whatever it cannot copy well is unlike its "
           "training data." if worst else
           "These are what it learnt best: the most typical images, or the simplest to copy.")
    st.markdown(f"**{what} for this model.** {why}")
    psnr = s["psnr"][shown]
    edge, side = (float(psnr.max()), "left") if worst else (float(psnr.min()), "right")
    marks = ({f"the {len(shown)} shown are at or {side} of this line": edge} if start == 0 else
             {"the shown lie between these lines": float(psnr.min()), "": float(psnr.max())})
    st.plotly_chart(viz.histogram_figure({("every scored image" + among): s["psnr"][keep].tolist()},
                                         "PSNR per image (dB)", marks=marks),
                    width="stretch", config={"displayModeBar": False})


def show_large(model, x: torch.Tensor, s: dict, what: str) -> None:
    """Draw one image large: input, reconstruction, error and its numbers against the data set's."""
    y = ae.reconstruct(model, x)
    m = {k: float(v[0]) for k, v in ae.image_metrics(x, y).items()}
    cols = st.columns(3)
    for col, pic, cap in zip(cols, (viz.tile(x, cell=240), viz.tile(y, cell=240),
                                    viz.tile(viz.error_rgb(y - x), cell=240)),
                             (what, "its reconstruction", "error (red: too bright, blue: too dark)")):
        col.image(pic, caption=cap, output_format="PNG")
    row = wrapping_row()
    row.metric("MSE", f"{m['mse']:.4f}", help=METRIC_HELP["MSE"], width=METRIC_WIDTH)
    row.metric("PSNR", f"{m['psnr']:.1f} dB", help=METRIC_HELP["PSNR"], width=METRIC_WIDTH)
    row.metric("SSIM", f"{m['ssim']:.3f}", help=METRIC_HELP["SSIM"], width=METRIC_WIDTH)
    worse = percentile_of(s["mse"], m["mse"])
    row.metric("Error percentile", f"{worse:.1f}%", width=METRIC_WIDTH, help="The share of the data set's images "
               "that this model copies better than this one: near 100% means an outlier.")
    if worse >= 95:
        st.warning(f"This image is copied worse than {worse:.1f}% of the data set's images: to this model it looks "
                   "unusual, which is how an autoencoder spots anomalies.")


def one_tab(model, ds, s: dict) -> None:
    """Draw any one image of the data set, large, starting at the worst copied."""
    worst = int(s["index"][int(s["mse"].argmax())])
    i = st.columns(3)[0].number_input(f"Image number (0 to {len(ds) - 1})", 0, len(ds) - 1, worst, key="rec_index",
                                      help=f"Starts at the image this model copies worst, #{worst}.")
    name = label_of(ds, i)
    show_large(model, ds.images[i:i + 1], s, f"image #{i}" + (f", class {name}" if name else ""))


def upload_panel(model, ds, s: dict, style: FrameStyle) -> None:
    """Draw the uploader and, for a readable picture, what the model sees of it and its reconstruction."""
    c = model.spec.input_shape[0]
    file = st.file_uploader("Upload an image (PNG, JPEG, GIF, BMP, WebP or TIFF, any size)", type=UPLOAD_TYPES,
                            key="rec_upload")
    left, right = wrapping_columns("rec_upload_options", (330, 360))
    invert = left.radio("Invert the colours", ["automatically", "always", "never"], horizontal=True,
                        key="rec_invert", help="The data set's images are light shapes on a dark background. "
                        "'Automatically' inverts a one-channel picture whose border is the opposite, such as dark "
                        "ink on white paper.")
    fit = right.radio("Framing", ["crop to the content", "keep the whole picture"], horizontal=True,
                      index=0 if c == 1 else 1, key="rec_fit",
                      help="Cropping centres what differs from the background and scales it to the size the "
                      "data set's images usually have, as the digits were prepared.")
    if file is None:
        st.caption("A photo of a digit written on paper works well: the page inverts it, crops it and shrinks it "
                   f"to {ds.shape[1]}×{ds.shape[2]}.")
        return
    try:
        prepared = image_to_tensor(file.getvalue(), model.spec.input_shape,
                                   invert={"automatically": "auto", "always": True, "never": False}[invert],
                                   fit="content" if fit.startswith("crop") else "whole", style=style)
    except ValueError as e:
        st.error(f"{as_text(file.name)}: {e}")
        return
    left, right = st.columns([1, 3], vertical_alignment="center")
    # at most 200 px wide, and at least 96 so that the caption fits under a tiny picture (a 1x1 upload)
    left.image(prepared.picture, caption="your picture", width=min(200, max(96, prepared.picture.shape[1])),
               output_format="PNG")
    right.markdown("**What the model sees.** " + prepared.description)
    show_large(model, prepared.tensor, s, "what the model sees")


def draw_panel(model, ds, s: dict, style: FrameStyle) -> None:
    """Draw the canvas (white on black, clearable) and the model's reconstruction of the drawing."""
    st.session_state.setdefault("rec_canvas_n", 0)
    left, right = wrapping_columns("rec_draw", (300, 400))
    with left:
        mode = st.segmented_control("Tool", ["freedraw", "line", "rect", "circle"], default="freedraw",
                                    key="rec_tool", format_func=lambda m: {"freedraw": "pen"}.get(m, m)) or "freedraw"
        width = st.slider("Pen width", 4, 48, 36 if ds.shape[1] <= 8 else 20, key="rec_pen")
        canvas = st_canvas(stroke_color="#FFFFFF", fill_color="#FFFFFF", background_color="#000000",
                           stroke_width=width, height=280, width=280, drawing_mode=mode, return_image_data=True,
                           key=f"rec_canvas_{st.session_state['rec_canvas_n']}")
        if st.button("Clear the canvas", icon="🧹", key="rec_clear"):
            st.session_state["rec_canvas_n"] += 1  # a new key gives a fresh, empty canvas
            st.rerun()
    with right:
        data = canvas.image_data
        if data is None:
            st.info("Draw in white on the black square: a digit for a digits model, a shape for sprites.")
            return
        try:
            prepared = canvas_to_tensor(data, model.spec.input_shape, style)
        except ValueError as e:
            st.info(str(e))
            return
        st.markdown("**What the model sees.** " + prepared.description)
        show_large(model, prepared.tensor, s, "what the model sees")


def own_tab(model, ds, s: dict, style: FrameStyle) -> None:
    """Draw the upload panel, and the canvas for one-channel models."""
    if model.spec.input_shape[0] == 1:
        upload, draw = st.tabs(["Upload a picture", "Draw one"])
        with draw:
            draw_panel(model, ds, s, style)
    else:
        upload = st.container()
    with upload:
        upload_panel(model, ds, s, style)


def foreign_tab(model, key: str, ctx, s: dict, style: FrameStyle) -> None:
    """Draw the model's errors on a data set it never saw next to its errors on its own."""
    family = dataset_family(ctx.dataset_name)
    others = [n for n in ae.EMBEDDED if n != family]
    st.markdown("An autoencoder learns to copy **the kind of images it was trained on**, not images in general. "
                "Feed it a data set it has never seen, each image cropped and framed like its own, and compare the "
                "errors.")
    name = st.selectbox("A data set it was not trained on", others, key=data_key("rec_foreign"))
    other = load_dataset(name)
    f = foreign_scores(model, key, other, name, model.spec.input_shape, style)
    here, there = float(s["psnr"].mean()), float(f["psnr"].mean())
    row = wrapping_row()  # wider than METRIC_WIDTH: the labels name the data sets
    row.metric(f"PSNR on {family} (its own data)", f"{here:.1f} dB", help=METRIC_HELP["PSNR"], width=240)
    row.metric(f"PSNR on {name} (never seen)", f"{there:.1f} dB", delta=f"{there - here:+.1f} dB", width=240)
    row.metric(f"SSIM on {name}", f"{float(f['ssim'].mean()):.3f}", width=240,
               delta=f"{float(f['ssim'].mean() - s['ssim'].mean()):+.3f}")
    st.plotly_chart(viz.histogram_figure({f"{family} (trained on)": s["psnr"].tolist(),
                                          f"{name} (never seen)": f["psnr"].tolist()}, "PSNR per image (dB)"),
                    width="stretch", config={"displayModeBar": False})
    x, y = f["inputs"][:PER_ROW], f["outputs"][:PER_ROW]
    st.html(viz.picture_grid_html(viz.stacked(x, y, viz.error_rgb(y - x), cell=CELL),
                                  [f"{psnr:.1f} dB" for psnr in f["psnr"][:PER_ROW].tolist()], per_row=PER_ROW))
    st.caption(f"{name} images cropped to their content and framed like the {family} images, at "
               f"{model.spec.input_shape[1]}×{model.spec.input_shape[2]}: input, reconstruction, error. The model "
               "pulls them towards what it knows. " + ERROR_LEGEND)


st.title("Reconstruct")
ctx = require_model()
model, ds = ctx.model, ctx.dataset
st.caption(f"How well does **{ctx.model_label}** copy the {dataset_family(ctx.dataset_name)} images? Every image "
           f"goes through the bottleneck of {model.spec.code_size} numbers and back.")
key = fingerprint(model)
s = scores(model, key, ds, ctx.dataset_name)
style = style_of(ds, ctx.dataset_name)
row = wrapping_row()
row.metric("Mean MSE", f"{float(s['mse'].mean()):.4f}", help=METRIC_HELP["MSE"], width=METRIC_WIDTH)
row.metric("Mean PSNR", f"{float(s['psnr'].mean()):.1f} dB", help=METRIC_HELP["PSNR"], width=METRIC_WIDTH)
row.metric("Mean SSIM", f"{float(s['ssim'].mean()):.3f}", help=METRIC_HELP["SSIM"], width=METRIC_WIDTH)
row.metric("Images scored", f"{len(s['index']):,}", width=METRIC_WIDTH, help="Every image of the data set, or an "
           f"evenly spaced sample of {SAMPLE:,} for larger sets, training images included.")
grid, one, own, foreign = st.tabs(["Grid", "One image", "Your own image", "Data it has never seen"])
with grid:
    grid_tab(model, ds, s)
with one:
    one_tab(model, ds, s)
with own:
    own_tab(model, ds, s, style)
with foreign:
    foreign_tab(model, key, ctx, s, style)
