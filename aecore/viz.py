"""Pictures and Plotly figures built from tensors: image tiles, error maps, loss curves, scatter, hourglass."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative, sample_colorscale

from .models import ModelSpec

# Okabe-Ito, a palette that stays distinct under the common colour-vision deficiencies
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           *qualitative.Safe]
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


def _layout(fig: go.Figure, title: str | None = None, height: int = 320) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig


def loss_figure(history: list[dict], title: str | None = "Loss per image") -> go.Figure:
    """Return line charts of every loss term per epoch, training solid and validation dashed."""
    fig = go.Figure()
    epochs = [h["epoch"] for h in history]
    terms = list(history[0]["train"]) if history else []
    for i, term in enumerate(terms):
        color = PALETTE[i % len(PALETTE)]
        for split, dash in (("train", "solid"), ("val", "dash")):
            ys = [h.get(split, {}).get(term) for h in history]
            if any(y is not None for y in ys):
                fig.add_scatter(x=epochs, y=ys, name=f"{term} ({split})", mode="lines+markers",
                                line=dict(color=color, dash=dash))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss", type="log")
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
