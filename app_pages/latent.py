"""Latent space: map a sample of codes with PCA, t-SNE or UMAP, click into it, compare retrieval, place an image."""
import sys
import threading
import time
from collections import Counter, OrderedDict
from functools import partial

import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

import aecore as ae
from aecore import projection, viz
from aecore.images import FrameStyle, canvas_to_tensor, frame_style, image_to_tensor
from aecore.latent import encode_sample, retrieval
from aecore.metrics import fingerprint
from app_pages.common import (METRIC_WIDTH, as_text, data_key, require_model, umap_warm_up, wrapping_columns,
                               wrapping_row)

SIZES = (500, 1000, 2000, 5000, 10_000)
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
METHOD_HELP = ("PCA is linear and instant, with no parameters: it shows the directions of greatest spread. t-SNE and "
               "UMAP bend the map to keep each point's neighbours close: clusters show, but distances between clusters "
               "mean little.")
MAX_MAPS = 12  # fitted maps kept by the server, shared by every session; the least recently used goes first
SHOWN = 48  # images drawn for a selection; the mean image uses all of them
NEIGHBOURS = 8
PANEL_PIXELS = 440  # about the side panel's width on a wide layout: wider image rows wrap; others shrink to fit if need be
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "ppm", "pgm", "pbm", "ico"]
TRUST_HELP = ("Trustworthiness (k = 5): how many of each point's 5 nearest neighbours on the map are also among its "
              "nearest in the full code, with a penalty for intruders that grows with how far away they really are. "
              "1 means the map invents no neighbours; a random map of these points would score near 0.5.")
KNN_HELP = ("The share of images whose label a 5-nearest-neighbour vote predicts correctly (5-fold cross-"
            "validation). It asks whether similar codes belong to the same class, with no training on the labels.")


# Cache keys. Encodings and k-NN scores: st.cache_data on (aecore.metrics.fingerprint(model) — a hash of its spec
# and weights —, the data set's name, the sample size); the model, data set and codes themselves are passed with a
# leading underscore, unhashed. Maps: a server-wide store (below) on the same three plus the method, dimensions
# and the method's parameters, so that returning to a map, in any session, is instant.
@st.cache_data(max_entries=16, ttl=3600, show_spinner="Encoding the sample…")
def encoded(_model, model_key: str, _dataset, dataset_name: str, n: int) -> dict:
    """Return the sample's data set numbers, codes and reconstruction errors."""
    return encode_sample(_model, _dataset, n)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Scoring k-NN accuracy of codes, pixels and PCA…")
def quality(_sample: dict, _dataset, model_key: str, dataset_name: str, n: int) -> dict:
    """Return the k-NN accuracies of the codes, the raw pixels and PCA with as many dimensions."""
    index = _sample["index"]
    return projection.code_quality(_sample["codes"], _dataset.images[index], _dataset.labels[index])


@st.cache_resource
def map_store() -> tuple[OrderedDict, threading.Lock]:
    """Return the server-wide store of fitted maps and its lock.

    The fitted projector (which places new points) is a large object that cannot be cheaply pickled, so it is
    kept as a resource rather than through st.cache_data; this store also lets a long fit draw its progress.
    """
    return OrderedDict(), threading.Lock()


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def placed_on(_fitted, map_key: tuple, _code, code_key: bytes) -> list:
    """Return where a code lands on a fitted map (cached: UMAP and t-SNE optimise the new point)."""
    return projection.place(_fitted, _code).tolist()


def fitted_map(key: tuple, codes: torch.Tensor, method: str, dims: int, params: dict) -> dict:
    """Return {"fitted", "coords", "trust", "seconds"} for a map, from the store or computed with progress shown."""
    store, lock = map_store()
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    start = time.perf_counter()
    n = f"{len(codes):,} codes"
    if method == "tsne":
        bar = st.progress(0.0, text=f"t-SNE: laying out {n}…")
        fitted, coords = projection.fit_projection(
            codes, method, dims, progress=lambda f: bar.progress(f, text=f"t-SNE: laying out {n}… {f:.0%}"),
            **params)
        bar.empty()
    elif method == "umap":
        warm = umap_warm_up()
        compiling = warm.is_alive() if warm is not None else "umap" not in sys.modules
        note = (" The first UMAP since the server started takes up to 15 s longer: numba compiles its code once."
                if compiling else "")
        with st.spinner(f"UMAP: laying out {n}…{note}", show_time=True):
            fitted, coords = projection.fit_projection(codes, method, dims, **params)
    else:
        fitted, coords = projection.fit_projection(codes, method, dims)
    with st.spinner("Measuring how faithful the map is…"):
        trust = projection.trustworthiness_chunked(codes, coords)
    entry = {"fitted": fitted, "coords": coords, "trust": trust, "seconds": time.perf_counter() - start}
    with lock:
        store[key] = entry
        while len(store) > MAX_MAPS:
            store.popitem(last=False)
    return entry


def size_options(total: int) -> list[int]:
    """Return the sample sizes offered for a data set of `total` images."""
    cap = min(total, SIZES[-1])
    return [s for s in SIZES if s < cap] + [cap]


def colour_options(ds: ae.ImageDataset) -> dict[str, tuple]:
    """Return {option: (kind, name)}: the label, each true factor and the reconstruction error."""
    options = {}
    if ds.labels is not None:
        options["label"] = ("label", None)
    for name in (ds.factors or {}):
        options[f"true factor: {name}"] = ("factor", name)
    options["reconstruction error"] = ("error", None)
    return options


def colouring(kind: str, name, ds: ae.ImageDataset, index: torch.Tensor, errors: torch.Tensor) -> dict:
    """Return the keyword arguments that colour the map: labels with class names, or values with their name."""
    if kind == "label":
        return {"labels": ds.labels[index].numpy(), "classes": ds.classes}
    if kind == "factor" and name == "shape" and ds.classes:  # a category, not a quantity
        return {"labels": ds.factors[name][index].long().numpy(), "classes": ds.classes}
    if kind == "factor":
        return {"values": ds.factors[name][index].numpy(), "value_name": name}
    return {"values": errors.numpy(), "value_name": "reconstruction MSE"}


def remember_selection(sample) -> None:
    """Keep the rows a person just selected (or cleared) on the map, for the sample of images mapped."""
    st.session_state["lat_picked"] = (sample, selected_rows(st.session_state.get("lat_map")))


def selected_rows(event) -> list[int]:
    """Return the sample rows of the selected points (marks excluded), from each point's customdata."""
    rows = []
    for p in (event.selection.points if event else []) or []:
        cd = p.get("customdata")
        cd = cd[0] if isinstance(cd, (list, tuple)) and cd else cd
        if isinstance(cd, (int, float)) and cd >= 0:
            rows.append(int(cd))
    return sorted(set(rows))


def label_counts(ds: ae.ImageDataset, numbers: torch.Tensor) -> str:
    """Return 'class ×count' for the labels of some images, most common first."""
    if ds.labels is None:
        return ""
    counts = Counter(int(v) for v in ds.labels[numbers])
    return ", ".join(f"{ds.classes[k] if ds.classes else k} ×{c}" for k, c in counts.most_common())


def picture(images: torch.Tensor, caption: str, ncols: int | None = None, cell: int = 96) -> None:
    """Draw images as one crisp grid at its own pixel size, in half as many columns when a row would not fit."""
    grid = viz.tile(images, ncols=ncols, cell=cell)
    if grid.shape[1] > PANEL_PIXELS and len(images) > 1:
        grid = viz.tile(images, ncols=max(1, (ncols or min(len(images), 8)) // 2), cell=cell)
    st.image(grid, caption=caption, output_format="PNG")  # natural width, never wider than the panel


def show_one(model, ds, s: dict, row: int) -> None:
    """Draw one point: its image and reconstruction, its nearest neighbours in code space and in pixel space."""
    i = int(s["index"][row])
    name = ds.classes[int(ds.labels[i])] if ds.labels is not None and ds.classes else ""
    x = ds.images[i:i + 1]
    st.markdown(f"**Image #{i}**" + (f" · {name}" if name else "")
                + f" · reconstruction MSE {float(s['errors'][row]):.4f}")
    picture(torch.cat([x, ae.reconstruct(model, x)]), "the image and its reconstruction", cell=120)
    found = retrieval(s["codes"], ds.images[s["index"]], row, NEIGHBOURS,
                      None if ds.labels is None else ds.labels[s["index"]])
    for space, what in (("code", "code space: what the model considers alike"),
                        ("pixel", "pixel space: what merely overlaps pixel by pixel")):
        numbers = s["index"][found[space]]
        same = f" · {found[f'{space}_same']} of {len(numbers)} share its label" if f"{space}_same" in found else ""
        st.markdown(f"Nearest {len(numbers)} in **{what}**{same}")
        picture(ds.images[numbers], " · ".join(f"#{int(n)}" for n in numbers), NEIGHBOURS, cell=48)


def show_many(model, ds, s: dict, rows: list[int]) -> None:
    """Draw a selection: its mean image and mean reconstruction, then its images above their reconstructions."""
    numbers = s["index"][rows]
    x = ds.images[numbers]
    y = ae.reconstruct(model, x)
    st.markdown(f"**{len(rows):,} images selected**" + (f" · {label_counts(ds, numbers)}" if ds.labels is not None
                                                         else ""))
    st.caption(f"mean reconstruction MSE {float(s['errors'][rows].mean()):.4f} "
               f"(the whole sample: {float(s['errors'].mean()):.4f})")
    picture(torch.cat([x.mean(0, keepdim=True), y.mean(0, keepdim=True)]),
            "the mean image of the selection, and the mean of their reconstructions", cell=120)
    shown = min(len(rows), SHOWN)
    picture(x[:shown], f"the images ({shown} of {len(rows):,})", 12, cell=32)
    picture(y[:shown], "their reconstructions", 12, cell=32)


def selection_panel(model, ds, s: dict, rows: list[int], three: bool) -> None:
    """Draw the selected points (one, many or none, with how to select) and the look-up box."""
    if len(rows) == 1:
        show_one(model, ds, s, rows[0])
    elif rows:
        show_many(model, ds, s, rows)
    else:
        how = ("A 3-D map turns and zooms but cannot be clicked (Streamlit receives no selections from 3-D "
               "charts): switch to 2-D to select points, or look one up by its number below." if three else
               "Click a point to select it; for a group, pick the lasso or box tool in the chart's toolbar and "
               "draw around it. Dragging zooms in; a double-click zooms out and clears a selection made on this "
               "map. A selection stays while you change the colouring or the projection.")
        st.info(f"{how} Selected images, their reconstructions and the mean image show here; for one point, its "
                "nearest neighbours in code space beside those in pixel space.")
    st.number_input("Or look up an image of the sample by its number", 0, len(ds) - 1, value=None,
                    key="lat_lookup", placeholder="an image number", help="The image is marked with a ring on "
                    "the map and shown here when nothing is selected on the chart.")


def input_image(model, ds, style: FrameStyle) -> tuple[torch.Tensor, str] | None:
    """Return an image to place (1, C, H, W) and its name, from the data set, an upload or a drawing."""
    sources = ["an image of the data set", "an upload"] + (["a drawing"] if model.spec.input_shape[0] == 1 else [])
    source = st.segmented_control("Place", sources, default=sources[0], key="lat_source") or sources[0]
    if source == sources[0]:
        i = st.number_input(f"Image number (0 to {len(ds) - 1})", 0, len(ds) - 1, value=None, key="lat_place_index",
                            placeholder="e.g. an image left out of the sample",
                            help="Any image of the data set, in the sample or not.")
        return None if i is None else (ds.images[i:i + 1], f"image #{i}")
    if source == "an upload":
        file = st.file_uploader("An image file", type=UPLOAD_TYPES, key="lat_upload")
        if file is None:
            return None
        try:
            prepared = image_to_tensor(file.getvalue(), model.spec.input_shape, style=style)
        except ValueError as e:
            st.error(f"{as_text(file.name)}: {e}")
            return None
        st.caption("What the model sees: " + prepared.description)
        return prepared.tensor, file.name
    st.session_state.setdefault("lat_canvas_n", 0)
    canvas = st_canvas(stroke_color="#FFFFFF", background_color="#000000", stroke_width=20 if ds.shape[1] <= 8 else 14,
                       height=200, width=200, drawing_mode="freedraw", return_image_data=True,
                       key=f"lat_canvas_{st.session_state['lat_canvas_n']}")
    if st.button("Clear the canvas", icon="🧹", key="lat_clear"):
        st.session_state["lat_canvas_n"] += 1  # a new key gives a fresh, empty canvas
        st.rerun()
    if canvas.image_data is None:
        return None
    try:
        prepared = canvas_to_tensor(canvas.image_data, model.spec.input_shape, style)
    except ValueError as e:
        st.caption(str(e))
        return None
    return prepared.tensor, "your drawing"


def place_panel(model, ds, s: dict, entry: dict, key: tuple, style: FrameStyle) -> dict:
    """Draw the controls that place an image on the map; return the marks to draw {name: coords}."""
    st.caption("Encode a new image and put it on this map without moving the other points. PCA projects it exactly; "
               "UMAP and t-SNE (openTSNE) optimise its position against the fixed map, from its nearest codes.")
    picked = input_image(model, ds, style)
    if picked is None:
        return {}
    x, name = picked
    code = ae.encode_dataset(model, x)
    slow = " The first placement on a UMAP map since the server started compiles code: a few seconds." \
        if key[3] == "umap" else ""
    with st.spinner(f"Placing {name} on the map…{slow}", show_time=True):
        xy = placed_on(entry["fitted"], key, code, code.numpy().tobytes())
    picture(torch.cat([x, ae.reconstruct(model, x)]), f"{name} and its reconstruction: the ★ on the map", cell=120)
    near = ae.neighbours(s["codes"], code, NEIGHBOURS)[0]
    numbers = s["index"][near]
    st.markdown(f"Its {len(numbers)} nearest codes in the sample" +
                (f": {label_counts(ds, numbers)}" if ds.labels is not None else ""))
    picture(ds.images[numbers], " · ".join(f"#{int(n)}" for n in numbers), NEIGHBOURS, cell=48)
    return {name: xy}


def quality_row(ds, s: dict, entry: dict, method: str, model_key: str, dataset_name: str) -> None:
    """Draw the map's trustworthiness and the k-NN accuracy of the codes against PCA and raw pixels."""
    row = wrapping_row()
    row.metric("Trustworthiness", f"{entry['trust']:.3f}", help=TRUST_HELP, width=METRIC_WIDTH)
    if ds.labels is None:
        row.caption("This data set has no labels, so there is no k-NN accuracy to compare.", width=300)
        return
    try:
        q = quality(s, ds, model_key, dataset_name, len(s["index"]))
    except ValueError:
        row.caption("Too few images per class in this sample for a 5-fold k-NN score: map more images.",
                    width=300)
        return
    row.metric(f"k-NN: codes ({q['dims']}-D)", f"{q['codes']:.1%}", help=KNN_HELP, width=METRIC_WIDTH,
               delta=f"{100 * (q['codes'] - q['pca']):+.1f} pts vs PCA")
    row.metric(f"k-NN: PCA ({q['dims']}-D)", f"{q['pca']:.1%}",
               help="The linear baseline: PCA squeezed to as many numbers as the code.", width=METRIC_WIDTH)
    row.metric(f"k-NN: pixels ({ds.shape[0] * ds.shape[1] * ds.shape[2]:,}-D)", f"{q['pixels']:.1%}",
               help="No compression at all: the nearest neighbours by pixel distance.", width=METRIC_WIDTH)
    verdict = ("beats PCA with as many dimensions: it learned structure a linear squeeze misses"
               if q["codes"] > q["pca"] + 0.005 else "does no better than PCA with as many dimensions")
    st.caption(f"The {q['dims']}-number code {verdict}. Scored on {q['points']:,} of the mapped images; "
               f"{METHOD_NAMES[method]} and its trustworthiness took {entry['seconds']:.1f} s (once: the map is kept).")


st.title("Latent space")
ctx = require_model()
model, ds = ctx.model, ctx.dataset
if len(ds) < 20:
    st.warning(f"This data set has {len(ds)} images; a map needs at least 20. Pick a larger data set.")
    st.stop()
st.caption(f"Every image goes through **{ctx.model_label}**'s encoder to a code of {model.spec.code_size} numbers; "
           "the map squeezes those codes to 2 or 3 dimensions. Images the model finds alike land close together.")

options = size_options(len(ds))
controls = wrapping_row(gap="small")
n = controls.select_slider("Images to map", options,
                           value=min(5000, options[-1]) if 5000 in options else options[-1], key=data_key("lat_n"),
                           width=180, help=f"A random sample of the {len(ds):,} images (the same one every time).")
method = controls.segmented_control("Projection", list(METHOD_NAMES), default="pca", format_func=METHOD_NAMES.get,
                                    key="lat_method", help=METHOD_HELP) or "pca"
dims = controls.segmented_control("Map", [2, 3], default=2, format_func=lambda d: f"{d}-D", key="lat_dims") or 2
colours = colour_options(ds)
colour = controls.selectbox("Colour by", list(colours), key=data_key("lat_colour"), width=180,
                            help="The label, a true factor of variation (sprites), or how badly each image is rebuilt.")
params = {}  # PCA has none
if method == "tsne":
    params["perplexity"] = float(controls.slider("Perplexity", 5, 100, 30, key="lat_perplexity", width=200,
                                                 help="Roughly how many neighbours each point keeps close: small "
                                                      "values show fine clumps, large ones the overall shape."))
elif method == "umap":
    with controls.container(horizontal=True, gap="small", width=296):  # UMAP's two sliders wrap together
        params["n_neighbors"] = st.slider("Neighbours", 2, 100, 15, key="lat_neighbors", width=140,
                                          help="How local the map is: few neighbours keep fine detail, many keep "
                                               "the global layout.")
        params["min_dist"] = st.slider("Min-dist", 0.0, 0.99, 0.1, 0.01, key="lat_min_dist", width=140,
                                       help="How tightly points may pack: 0 gives dense clumps, higher spreads them.")

model_key = fingerprint(model)
s = encoded(model, model_key, ds, ctx.dataset_name, n)
key = (model_key, ctx.dataset_name, n, method, dims, tuple(sorted(params.items())))
left, right = wrapping_columns("lat_columns", (420, 280))
with left:
    try:
        entry = fitted_map(key, s["codes"], method, dims, params)
    except (ValueError, RuntimeError) as e:
        st.error(f"{METHOD_NAMES[method]} could not map these codes: {e}. Try another method or setting.")
        st.stop()
style = frame_style(ds.images[:500])
select_tab, place_tab = right.tabs(["Selection", "Place an image"])
with place_tab:
    marks = place_panel(model, ds, s, entry, key, style)
lookup = st.session_state.get("lat_lookup")
positions = {int(v): r for r, v in enumerate(s["index"].tolist())}
if lookup is not None and lookup in positions:
    marks = {f"image #{lookup}": entry["coords"][positions[lookup]][None], **marks}
# the points a person picked stay picked while the sample does (another colouring, projection or setting draws a new
# chart, which Streamlit gives a fresh, empty selection); only 2-D maps can show and change them
sample = (model_key, ctx.dataset_name, n)
kept = st.session_state.get("lat_picked")
if kept and kept[0] != sample:  # picked on another sample: those rows would be other images here
    del st.session_state["lat_picked"]
kept = kept[1] if kept and kept[0] == sample else []
picked = kept if dims == 2 else []
fig = viz.projection_figure(entry["coords"], index=s["index"].numpy(), hover={"error": s["errors"].numpy()},
                            marks=marks, revision=str(key), selected=picked,
                            **colouring(*colours[colour], ds, s["index"], s["errors"]))
with left:
    st.plotly_chart(fig, width="stretch", key="lat_map", on_select=partial(remember_selection, sample),
                    selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
    if dims == 3:
        st.caption("Drag to turn the map, scroll to zoom; hover a point for its number. Selecting works on 2-D maps.")
rows = picked
if not rows and lookup is not None:
    rows = [positions[lookup]] if lookup in positions else []
with select_tab:
    if lookup is not None and lookup not in positions:
        st.warning(f"Image #{lookup} is not among the {n:,} mapped images: place it with the 'Place an image' tab.")
    if kept and dims == 3:
        one = len(kept) == 1
        st.caption(("The image" if one else f"The {len(kept):,} images") + " selected on the 2-D map "
                   + ("stays selected: switch back to 2-D to see it." if one else
                      "stay selected: switch back to 2-D to see them."))
    if kept:  # a double-click clears a selection only on the chart it was made on
        st.button("Clear the selection", icon=":material/deselect:", type="tertiary", key="lat_unselect",
                  on_click=st.session_state.pop, args=("lat_picked", None))
    selection_panel(model, ds, s, rows, dims == 3)

quality_row(ds, s, entry, method, model_key, ctx.dataset_name)
factors = None if ds.factors is None else {k: v[s["index"]] for k, v in ds.factors.items()}
st.download_button(
    "Download the codes and map coordinates (CSV)", icon="⬇️", on_click="ignore", mime="text/csv",
    file_name=f"latent-{ctx.dataset_name.replace('/', '_').replace(':', '_')}-{method}-{dims}d-{n}.csv",
    data=lambda: projection.map_csv(s["index"], entry["coords"], s["codes"],
                                    None if ds.labels is None else ds.labels[s["index"]], ds.classes, s["errors"],
                                    factors),
    help="One row per mapped image: its number in the data set, label, reconstruction error, true factors, map "
         "coordinates and code.")
