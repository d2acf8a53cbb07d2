"""Pictures and Plotly figures built from tensors: image tiles, error maps, loss curves, scatter, hourglass."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.colors import qualitative, sample_colorscale

from .models import ModelSpec

# Okabe-Ito, a palette that stays distinct under the common colour-vision deficiencies; then Paul Tol's wine and grey
# for a ninth and tenth class (the first two of Plotly's "Safe", his light blue and rose, were hard to tell from the
# fifth and fourth on a map of digits), then the rest of "Safe" for data sets with more classes
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#882255",
           "#888888", *[c for c in qualitative.Safe if c not in ("rgb(136, 34, 85)", "rgb(136, 136, 136)")]]
# every figure is drawn on plotly_white: set once as the default, since `template=` per figure deep-copies the
# template (about 8 ms a figure, a third of a Denoise slider move)
pio.templates.default = "plotly_white"
CELL_PIXELS = 96  # images are drawn at least this large, scaled up without blur
_DIVERGING = np.array([[int(c) for c in s[4:-1].split(",")]
                       for s in sample_colorscale("RdBu_r", list(np.linspace(0, 1, 256)))], dtype=np.uint8)


def _rgb(images: torch.Tensor) -> np.ndarray:
    x = images.detach().cpu().clamp(0, 1).numpy()
    x = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x[:, :3]
    return (x.transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)


def error_rgb(signed_error: torch.Tensor, limit: float = 0.5) -> np.ndarray:
    """Return (N, H, W, 3) uint8 pictures of a signed error (blue below, red above, white zero), averaged over channels."""
    e = signed_error.detach().cpu().mean(1).numpy()
    idx = np.clip((e / limit + 1) * 127.5, 0, 255).astype(np.uint8)
    return _DIVERGING[idx]


def tile(images, ncols: int | None = None, cell: int = CELL_PIXELS, pad: int = 2) -> np.ndarray:
    """Return one (H, W, 3) uint8 picture of images in a grid, each scaled up by a whole factor (crisp pixels).

    `images` is a tensor (N, C, H, W) in [0, 1] or an already coloured uint8 array (N, H, W, 3).
    """
    pics = images if isinstance(images, np.ndarray) else _rgb(images)
    n, h, w, _ = pics.shape
    ncols = ncols or min(n, 8)
    nrows = max(1, math.ceil(n / ncols))
    scale = max(1, round(cell / max(h, w)))
    pics = pics.repeat(scale, axis=1).repeat(scale, axis=2)
    sh, sw = h * scale, w * scale
    out = np.full((nrows * (sh + pad) - pad, ncols * (sw + pad) - pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (sh + pad):r * (sh + pad) + sh, c * (sw + pad):c * (sw + pad) + sw] = pics[i]
    return out


# Plotly's buttons that these figures do not need: the toolbar stays short enough to leave narrow charts readable.
# The selection tools stay on a map that a page selects from by box or lasso (projection_figure).
ZOOM_STEP_BUTTONS = ["zoomIn2d", "zoomOut2d", "autoScale2d"]
SELECTION_BUTTONS = ["lasso2d", "select2d"]


def _layout(fig: go.Figure, title: str | None = None, height: int = 320) -> go.Figure:
    # the legend at the figure's foot, below the x axis's title whatever the height: Plotly widens the margin for it;
    # the title just above the plot, below the toolbar that Plotly shows at the figure's top right on hover
    fig.update_layout(title=dict(text=title, x=0, xref="container", y=1, yref="paper", yanchor="bottom",
                                 pad=dict(l=4, b=8)),
                      height=height, margin=dict(l=10, r=10, t=62 if title else 10, b=10), modebar_remove=ZOOM_STEP_BUTTONS + SELECTION_BUTTONS,
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom"))
    return fig


def loss_figure(history: list[dict], title: str | None = "Loss per image") -> go.Figure:
    """Return line charts of every loss term per epoch, training solid and validation dashed."""
    fig = go.Figure()
    epochs = [h["epoch"] for h in history]
    terms = list(history[0]["train"]) if history else []
    # the total first, wide and pale: it lies under the terms that make it up, which can run close to it
    for i, term in sorted(enumerate(terms), key=lambda it: it[1] != "total"):
        color = PALETTE[i % len(PALETTE)]
        wide = dict(width=6) if term == "total" and len(terms) > 1 else {}
        for split, dash in (("train", "solid"), ("val", "dash")):
            ys = [h.get(split, {}).get(term) for h in history]
            if any(y is not None for y in ys):
                fig.add_scatter(x=epochs, y=ys, name=f"{term} ({split})", mode="lines+markers",
                                line=dict(color=color, dash=dash, **wide), opacity=0.4 if wide else 1.0)
    # whole epochs only, about ten ticks at most: Plotly's own ticks at 1.2, 1.4... read "1, 1, 1, 2" as integers
    fig.update_xaxes(title="epoch", tickformat="d", tick0=1, dtick=max(1, math.ceil(len(epochs) / 10)))
    if epochs:  # less than an epoch's room past the ends: no tick names an epoch that never ran
        fig.update_xaxes(range=[epochs[0] - 0.4, epochs[-1] + 0.4])
        fig.update_traces(cliponaxis=False)  # the end markers whole, however many epochs the axis holds
    # plain number labels: terms a few decades apart (a VAE's KL and reconstruction) otherwise get cryptic ticks
    fig.update_yaxes(title="loss", type="log", tickformat="~g")
    return _layout(fig, title)


def scatter_figure(xy: np.ndarray, labels=None, classes=None, title: str | None = None, height: int = 360,
                   ranges=None) -> go.Figure:
    """Return a 2-D scatter of points coloured by class with a colour-blind-safe palette."""
    fig = go.Figure()
    labels = np.zeros(len(xy), dtype=int) if labels is None else np.asarray(labels)
    for k in np.unique(labels):
        pts = xy[labels == k]
        name = classes[k] if classes is not None and k < len(classes) else str(k)
        fig.add_scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=name,
                          marker=dict(size=5, color=PALETTE[int(k) % len(PALETTE)], opacity=0.8))
    if ranges is not None:
        fig.update_xaxes(range=ranges[0])
        fig.update_yaxes(range=ranges[1])
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    return _layout(fig, title, height)


def hourglass_figure(spec: ModelSpec, height: int = 260) -> go.Figure:
    """Return the hourglass of a model: one bar per stage, its height the number of values (log scale)."""
    sizes = spec.layer_sizes()
    mid = len(sizes) // 2
    heights = [math.log10(s) + 0.3 for s in sizes]
    names = (["input"] + [f"enc {i + 1}" for i in range(mid - 1)] + ["code"]
             + [f"dec {i + 1}" for i in range(mid - 1)] + ["output"])
    colors = [PALETTE[0]] * mid + [PALETTE[1]] + [PALETTE[2]] * mid
    fig = go.Figure(go.Bar(x=names, y=heights, base=[-h / 2 for h in heights], marker_color=colors,
                           text=[f"{s:,}" for s in sizes], textposition="outside", hoverinfo="text",
                           hovertext=[f"{n}: {s:,} values" for n, s in zip(names, sizes)]))
    fig.update_yaxes(visible=False, range=[-max(heights) / 2 - 0.6, max(heights) / 2 + 0.6])
    fig.update_layout(showlegend=False, bargap=0.15)
    return _layout(fig, None, height)


def curves_figure(x, series: dict[str, list], xlabel: str, ylabel: str, title: str | None = None,
                  height: int = 300) -> go.Figure:
    """Return one line per named series against a shared x axis."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_scatter(x=list(x), y=list(ys), name=name, mode="lines+markers",
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    fig.update_xaxes(title=xlabel)
    fig.update_yaxes(title=ylabel)
    return _layout(fig, title, height)


def frame_ranges(frames, pad: float = 0.1) -> tuple[list[float], list[float]]:
    """Return one (x range, y range) that holds every 2-D frame, centred on 0, so an animation keeps its axes still."""
    reach = max((float(np.abs(np.asarray(f)[:, :2]).max()) for f in frames if len(f)), default=1.0)
    r = reach * (1 + pad)
    return [-r, r], [-r, r]


def stacked(*rows, cell: int = CELL_PIXELS, pad: int = 2) -> list[np.ndarray]:
    """Return one picture per image: the i-th image of every row (tensor or uint8 (N, H, W, 3)), top to bottom."""
    pics = [r if isinstance(r, np.ndarray) else _rgb(r) for r in rows]
    return [tile(np.stack([p[i] for p in pics]), ncols=1, cell=cell, pad=pad) for i in range(len(pics[0]))]


def histogram_figure(series: dict[str, list], xlabel: str, title: str | None = None, marks: dict | None = None,
                     height: int = 280) -> go.Figure:
    """Return overlaid histograms of named series, with optional labelled vertical marks {label: x}."""
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_histogram(x=np.asarray(values, dtype=float), name=name, opacity=0.6, histnorm="percent",
                          marker_color=PALETTE[i % len(PALETTE)], nbinsx=40)
    for j, (label, x) in enumerate((marks or {}).items()):
        # the label above the plot, not over the bars; a second mark's label on the other side of its line
        fig.add_vline(x=float(x), line_dash="dash", line_color=PALETTE[(len(series) + j) % len(PALETTE)],
                      annotation_text=label, annotation_position="top left" if j % 2 else "top right",
                      annotation_yanchor="bottom")
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title=xlabel)
    fig.update_yaxes(title="% of images")
    _layout(fig, title, height)
    return fig.update_layout(margin=dict(t=30)) if marks and not title else fig


def gif_bytes(images: torch.Tensor, duration_ms: int = 120, cell: int = CELL_PIXELS,
              boomerang: bool = True) -> bytes:
    """Return a looping animated GIF of images (N, C, H, W), one crisp frame each; boomerang plays it back too."""
    import io

    from PIL import Image

    frames = [Image.fromarray(tile(images[i:i + 1], 1, cell, 0)) for i in range(len(images))]
    if boomerang and len(frames) > 2:
        frames += frames[-2:0:-1]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def png_bytes(picture: np.ndarray) -> bytes:
    """Return a (H, W, 3) uint8 picture, e.g. from tile(), as PNG file bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buf, format="PNG")
    return buf.getvalue()


def _png_data_url(picture: np.ndarray) -> str:
    """Return a picture as a PNG inside a data URL, for an <img> of HTML that carries its own pictures."""
    import base64

    return f"data:image/png;base64,{base64.b64encode(png_bytes(picture)).decode()}"


def labelled_rows_html(rows: dict[str, np.ndarray]) -> str:
    """Return an HTML grid of pictures (e.g. from tile()), one a row after its label in bold, the pictures as PNGs
    inside the HTML (data URLs), each at most as wide as its column.

    One element for a page to draw, however many rows. The Denoise page drew each row as two Streamlit columns with a
    label and an image (and its numbers as metrics): React's work on those elements made a slider move take 153-175 ms
    in Chromium on two cores, against 86-89 ms with this grid and a table (docs/latency.md).
    """
    import html

    cells = "".join(
        f'<div style="font-weight:600">{html.escape(label)}</div>'
        f'<img alt="{html.escape(label)}" style="max-width:100%;height:auto" src="{_png_data_url(picture)}">'
        for label, picture in rows.items())
    return ('<div style="display:grid;grid-template-columns:minmax(6rem,1fr) 5fr;align-items:center;'
            f'gap:0.75rem 1rem">{cells}</div>')


def picture_grid_html(pictures: list[np.ndarray], captions: list[str] | None = None, per_row: int = 8,
                      min_width: int = 80) -> str:
    """Return an HTML grid of pictures with an optional caption under each (escaped; newlines kept), as PNG data
    URLs: `per_row` a row while each gets `min_width` pixels, else half as many a row, and so on, so rows stay full.

    One element for a page to draw. The Reconstruct grid was a column, an image and a caption per picture (up to 48):
    with this grid a change of order took a median of 500 ms in Chromium on two cores, against 587 ms (16 pictures,
    24 changes each, alternated servers). On a narrow page the pictures wrap instead of shrinking.
    """
    import html

    captions = captions or [""] * len(pictures)
    cells = "".join(
        f'<figure style="margin:0"><img alt="{html.escape(c.splitlines()[0] if c else "picture")}" '
        f'style="max-width:100%;height:auto;display:block" src="{_png_data_url(picture)}">'
        + (f'<figcaption style="font-size:0.875rem;opacity:0.6;margin-top:0.25rem">'
           f'{"<br>".join(html.escape(line) for line in c.splitlines())}</figcaption>' if c else "")
        + "</figure>"
        for picture, c in zip(pictures, captions))
    gap, n = 12, per_row
    rules = [f".aex-grid-{n} {{ display: grid; gap: {gap}px; grid-template-columns: repeat({n}, minmax(0, 1fr)) }}"]
    while n > 1:  # container queries: later (narrower) ones win
        rules.append(f"@container (max-width: {n * min_width + (n - 1) * gap - 1}px) {{ .aex-grid-{per_row} "
                     f"{{ grid-template-columns: repeat({n // 2}, minmax(0, 1fr)) }} }}")
        n //= 2
    return (f"<style>.aex-grid-box {{ container-type: inline-size }} {' '.join(rules)}</style>"
            f'<div class="aex-grid-box"><div class="aex-grid-{per_row}">{cells}</div></div>')


def kl_figure(kl, threshold: float = 0.01, height: int = 280) -> go.Figure:
    """Return a bar chart of each code dimension's KL (nats, log scale), most informative first, inactive ones grey."""
    kl = np.asarray(kl, dtype=float).reshape(-1)
    order = np.argsort(-kl, kind="stable")
    names = [f"z{d + 1}" for d in order]
    colors = [PALETTE[0] if kl[d] > threshold else "#BBBBBB" for d in order]
    fig = go.Figure(go.Bar(x=names, y=np.maximum(kl[order], 1e-5), marker_color=colors, width=0.6,
                           customdata=kl[order], hovertemplate="%{x}: %{customdata:.4f} nats<extra></extra>"))
    fig.add_hline(y=threshold, line_dash="dash", line_color=PALETTE[5])
    # above the plot, not on the line: there it covered the bars of the last dimensions
    fig.add_annotation(x=1, xref="paper", y=1, yref="paper", text=f"dashed line: active above {threshold:g} nats",
                       showarrow=False, xanchor="right", yanchor="bottom", font=dict(color=PALETTE[5]))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, title="code dimension")
    fig.update_yaxes(type="log", dtick=1, title="KL from the prior (nats)")
    fig.update_layout(showlegend=False)
    return _layout(fig, None, height).update_layout(margin=dict(t=30))


def latent_map_figure(xy, labels=None, classes=None, index=None, paths: dict | None = None,
                      marks: dict | None = None, axis_titles=("", ""), height: int = 440) -> go.Figure:
    """Return a clickable 2-D map of codes by class (each point carries its data set index as customdata), with
    paths {name: (K, 2)} drawn as lines and marks {name: (x, y)} as labelled stars."""
    xy = np.asarray(xy, dtype=float)
    labels = np.zeros(len(xy), dtype=int) if labels is None else np.asarray(labels)
    index = np.arange(len(xy)) if index is None else np.asarray(index)
    fig = go.Figure()
    for k in np.unique(labels):
        pick = labels == k
        name = classes[k] if classes is not None and k < len(classes) else str(k)
        # SVG, not WebGL: WebGL points would be drawn over the paths and the stars
        fig.add_scatter(x=xy[pick, 0], y=xy[pick, 1], mode="markers", name=name, customdata=index[pick],
                        hovertemplate=f"{name} · image %{{customdata}}<extra></extra>",
                        marker=dict(size=6, color=PALETTE[int(k) % len(PALETTE)], opacity=0.45))
    for i, (name, path) in enumerate((paths or {}).items()):
        path = np.asarray(path, dtype=float)
        fig.add_scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name=name, hoverinfo="skip",
                        line=dict(color="#000000", width=2.5, dash=("solid", "dash", "dot")[i % 3]),
                        marker=dict(size=6, color="#000000", symbol=("circle", "diamond", "square")[i % 3]))
    for name, (x, y) in (marks or {}).items():
        fig.add_scatter(x=[float(x)], y=[float(y)], mode="markers+text", text=[name], textposition="top center",
                        showlegend=False, hoverinfo="skip", textfont=dict(size=16, color="#000000"),
                        marker=dict(size=18, symbol="star", color=PALETTE[6], line=dict(color="#000000", width=1.5)))
    fig.update_xaxes(title=axis_titles[0], zeroline=False)
    fig.update_yaxes(title=axis_titles[1], zeroline=False, scaleanchor="x")
    return _layout(fig, None, height)


def sweep_figure(x, series: dict[str, list], xlabel: str, ylabel: str, title: str | None = None,
                 log_x: bool = True, mark: tuple[float, str] | None = None, height: int = 340) -> go.Figure:
    """Return curves against a swept setting: a log x axis ticked at the swept values, an optional (x, label) mark."""
    x = list(x)
    fig = curves_figure(x, series, xlabel, ylabel, title, height)
    if log_x:
        fig.update_xaxes(type="log", tickvals=x, ticktext=[f"{v:g}" for v in x])
    if mark is not None:
        fig.add_vline(x=mark[0], line_dash="dot", line_color="#555555", annotation_text=mark[1])
    return fig


def _hover_text(n: int, index, names, hover: dict | None) -> list[str]:
    index = np.arange(n) if index is None else np.asarray(index)
    parts = [[f"image #{int(i)}" for i in index]]
    if names is not None:
        parts.append([str(s) for s in names])
    for key, values in (hover or {}).items():
        parts.append([f"{key} {float(v):.3g}" for v in np.asarray(values)])
    return [" · ".join(p) for p in zip(*parts)]


RINGED_SELECTION = 10  # a selection of at most this many points gets a ring round each


def projection_figure(coords, labels=None, classes=None, values=None, value_name: str = "value", index=None,
                      hover: dict | None = None, marks: dict | None = None, colorscale: str = "Cividis",
                      revision=None, height: int = 540, selected=None) -> go.Figure:
    """Return a 2-D or 3-D map of points, by class (one legend entry each) or by a continuous value (colour bar).

    Each point's customdata is its row in `coords`, so a selection maps back to rows whatever the traces; `index`
    (data set numbers) and `hover` ({name: values}) label the hover text; `marks` ({name: (M, dims)}) adds large
    marked points whose customdata is -1. The colour scale spans the 1st to 99th percentile, so a few outliers do
    not wash it out. `revision` keeps zoom and camera across redraws of the same map. `selected` (rows) are drawn as
    selected on a 2-D map, as if a person had picked them there, each in a ring where they are few.
    """
    xyz = np.asarray(coords, dtype=float)
    three = xyz.shape[1] == 3
    rows = np.arange(len(xyz))
    chosen = np.asarray([] if selected is None else selected, dtype=int)
    labels = None if labels is None else np.asarray(labels).astype(int)
    names = None if labels is None else [classes[k] if classes and k < len(classes) else str(k) for k in labels]
    text = np.asarray(_hover_text(len(xyz), index, names, hover), dtype=object)
    fig = go.Figure()

    def add(pick, name, marker, **kw):
        axes = dict(x=xyz[pick, 0], y=xyz[pick, 1], **({"z": xyz[pick, 2]} if three else {}))
        trace = go.Scatter3d if three else go.Scattergl
        picked = {} if three else dict(selected=dict(marker=dict(opacity=1.0, size=size + 5)),
                                       unselected=dict(marker=dict(opacity=0.3)))  # the map stays readable
        if len(chosen) and not three:
            picked["selectedpoints"] = np.flatnonzero(np.isin(rows[pick], chosen))
        fig.add_trace(trace(**axes, mode="markers", name=name, customdata=rows[pick], text=text[pick],
                            hovertemplate="%{text}<extra></extra>", marker=marker, **picked, **kw))

    size = 3 if three else 5
    if values is not None:
        v = np.asarray(values, dtype=float)
        lo, hi = np.nanpercentile(v, [1, 99]) if len(v) else (0.0, 1.0)
        add(rows, value_name, dict(size=size, color=v, colorscale=colorscale, cmin=lo, cmax=max(hi, lo + 1e-12),
                                   opacity=0.85, colorbar=dict(title=dict(text=value_name, side="right"),
                                                               thickness=14)), showlegend=False)
    elif labels is not None:
        for k in np.unique(labels):
            add(labels == k, classes[k] if classes and k < len(classes) else str(k),
                dict(size=size, color=PALETTE[int(k) % len(PALETTE)], opacity=0.8))
    else:
        add(rows, "codes", dict(size=size, color=PALETTE[0], opacity=0.8), showlegend=False)
    if 0 < len(chosen) <= RINGED_SELECTION and not three:  # a ring finds one point in any colouring
        fig.add_trace(go.Scatter(x=xyz[chosen, 0], y=xyz[chosen, 1], mode="markers", name="selected",
                                 hoverinfo="skip", showlegend=False, customdata=np.full(len(chosen), -1),
                                 marker=dict(size=18, symbol="circle-open", color="#000000", line=dict(width=2))))
    symbols = ("diamond", "circle") if three else ("star", "circle-open")
    for i, (name, pts) in enumerate((marks or {}).items()):
        p = np.asarray(pts, dtype=float).reshape(-1, xyz.shape[1])
        axes = dict(x=p[:, 0], y=p[:, 1], **({"z": p[:, 2]} if three else {}))
        trace = go.Scatter3d if three else go.Scatter
        fig.add_trace(trace(**axes, mode="markers", name=name, customdata=np.full(len(p), -1),
                            hovertemplate=f"{name}<extra></extra>",
                            marker=dict(size=(9 if three else 20) + 4 * i, symbol=symbols[i % 2],
                                        color=PALETTE[6] if i % 2 == 0 else "#000000",
                                        line=dict(color="#000000", width=2))))
    plain = dict(showticklabels=False, title="", zeroline=False, showgrid=False)
    if three:
        fig.update_layout(scene=dict(xaxis=plain, yaxis=plain, zaxis=plain, aspectmode="data"))
    else:
        fig.update_xaxes(**plain, showline=True, mirror=True, linecolor="#DDDDDD")
        fig.update_yaxes(**plain, showline=True, mirror=True, linecolor="#DDDDDD", scaleanchor="x")
        fig.update_layout(dragmode="zoom")  # Streamlit turns clicks into selections only outside lasso/box mode
    _layout(fig, None, height)
    # the legend below the map, clear of Plotly's toolbar at the top and of a colour bar at the right, leaves the map
    # the column's whole width: at the side it made the square map a tall, narrow frame
    fig.update_layout(uirevision=revision, margin=dict(l=10, r=10, t=34, b=10), modebar_remove=ZOOM_STEP_BUTTONS,
                      legend=dict(orientation="h", x=0, y=-0.02, xanchor="left", yanchor="top", yref="paper",
                                  itemsizing="constant"))
    return fig
