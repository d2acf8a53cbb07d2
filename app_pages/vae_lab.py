"""VAE lab: walk a variational autoencoder's code — interpolate, traverse, sample, map — and check its KL."""
import streamlit as st
import torch

import aecore as ae
from aecore import latent, viz
from aecore.images import frame_style, image_to_tensor
from app_pages.common import (METRIC_WIDTH, dataset_family, model_options, require_model, wrapping_columns,
                               wrapping_row)

MAP_POINTS = 2000  # codes drawn on the latent map: enough to show the clusters, few enough to stay quick
THRESHOLD = 0.01  # nats: a dimension whose KL stays below this carries (almost) nothing
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
STRIP_WIDTH = 900  # pixels an interpolation strip may take


def analysis(model, ds, name):
    """Return the codes, labels and data set indices of a sample, and the KL per dimension, once per model."""
    memo = st.session_state.setdefault("vae_memo", {})
    key = (id(model), name, len(ds))
    if key not in memo:
        memo.clear()
        index = torch.arange(len(ds))
        if len(ds) > MAP_POINTS:
            index = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:MAP_POINTS].sort().values
        sample = ds.subset(index)
        with st.spinner("Encoding the data set…"):
            memo[key] = {"index": index, "labels": sample.labels, "codes": ae.encode_dataset(model, sample),
                         "kl": ae.kl_per_dimension(model, sample)}
    return memo[key]


def class_name(ds, i: int) -> str:
    """Return ' · class NAME' for a labelled image, else ''."""
    return f" · {ds.classes[int(ds.labels[i])]}" if ds.labels is not None and ds.classes else ""


def kept_key(name: str) -> str:
    """Return the widget key of a value kept in st.session_state[name]; it changes whenever code sets the value."""
    return f"{name}__{st.session_state.get(name + '__version', 0)}"


def keep_value(name: str, key: str) -> None:
    """Copy a widget's new value into its kept state."""
    st.session_state[name] = st.session_state[key]


def set_kept(name: str, value) -> None:
    """Set a kept value from code; the new widget key makes the browser show it, even after the widget was hidden."""
    st.session_state[name] = value
    st.session_state[name + "__version"] = st.session_state.get(name + "__version", 0) + 1


def kept(widget, name: str, label: str, *args, **kwargs):
    """Draw a widget whose value lives in st.session_state[name], so a click on the map can set it too."""
    key = kept_key(name)
    return widget(label, *args, key=key, on_change=keep_value, args=(name, key), **kwargs)


def pick_image(ds, dataset_name: str, name: str, default: int):
    """Draw the picker of one end of the path; return (image (C, H, W) or None, a caption)."""
    sources = ["Index", "Class", "Upload"] if ds.labels is not None and ds.classes else ["Index", "Upload"]
    source = st.session_state.setdefault(f"vae_src_{name}", "Index")
    source = kept(st.radio, f"vae_src_{name}", f"Image {name} from", sources, horizontal=True,
                  index=sources.index(source) if source in sources else 0)
    if source == "Index":
        pick = min(st.session_state.setdefault(f"vae_idx_{name}", default), len(ds) - 1)
        i = int(kept(st.number_input, f"vae_idx_{name}", "Index in the data set", 0, len(ds) - 1, pick,
                     help="Or click a point on the latent map below"))
        return ds.images[i], f"{name}: image {i}{class_name(ds, i)}"
    if source == "Class":
        # keyed by data set: another data set has other classes
        label = st.selectbox("Class", range(len(ds.classes)), format_func=lambda k: ds.classes[k],
                             key=f"vae_cls_{name}_{dataset_name}", index=min(default, len(ds.classes) - 1))
        members = torch.nonzero(ds.labels == label).flatten()
        if len(members) == 0:
            st.warning(f"The data set has no image of class {ds.classes[label]}.")
            return None, ""
        nth = int(st.number_input(f"Which one ({len(members)} in this class)", 0, len(members) - 1,
                                  key=f"vae_nth_{name}_{dataset_name}_{label}"))
        i = int(members[nth])
        return ds.images[i], f"{name}: image {i}{class_name(ds, i)}"
    upload = st.file_uploader("An image file", type=UPLOAD_TYPES, key=f"vae_up_{name}")
    if upload is None:
        st.caption("Upload a picture; it is cropped, scaled and converted to look like the data set's images.")
        return None, ""
    try:
        prepared = image_to_tensor(upload.getvalue(), ds.shape, style=frame_style(ds.images))
    except ValueError as e:
        st.error(str(e))
        return None, ""
    st.caption(prepared.description)
    return prepared.tensor[0], f"{name}: your upload"


def on_map_click():
    """Make the clicked point the next end of the path, then move on to the other end."""
    points = st.session_state["vae_map"].selection.points
    if not points:
        return
    data = points[0].get("customdata")
    if data is None:  # a click on a path or a star, not on an image
        return
    target = st.session_state.get("vae_target", "A")
    set_kept(f"vae_src_{target}", "Index")
    set_kept(f"vae_idx_{target}", int(data[0] if isinstance(data, (list, tuple)) else data))
    set_kept("vae_target", "B" if target == "A" else "A")


def interpolation_tab(model, ds, dataset_name, facts):
    """Two images, the paths between them in latent space and in pixels, on the map, and as files."""
    col_a, col_b, col_opt = wrapping_columns("vae_pick", (220, 220, 140))
    with col_a:
        x0, cap0 = pick_image(ds, dataset_name, "A", 0)
        if x0 is not None:
            st.image(viz.tile(x0[None], cell=72), caption=cap0, output_format="PNG")
    with col_b:
        x1, cap1 = pick_image(ds, dataset_name, "B", 1)
        if x1 is not None:
            st.image(viz.tile(x1[None], cell=72), caption=cap1, output_format="PNG")
    with col_opt:
        steps = st.slider("Steps", 3, 16, 10, key="vae_steps")
    if x0 is None or x1 is None:
        st.info("Pick both images to see the paths between them.")
        return x0
    lin, lin_codes = ae.interpolate(model, x0, x1, steps, "linear")
    strips = {"Linear path in latent space": lin}
    paths = {"linear path": lin_codes}
    if model.spec.code_size > 1:  # on a line there is no sphere to follow
        sph, paths["spherical path"] = ae.interpolate(model, x0, x1, steps, "slerp")
        strips["Spherical path (slerp) in latent space"] = sph
    strips["Pixel cross-fade, no model"] = latent.crossfade(x0, x1, steps)
    cell = max(24, min(96, STRIP_WIDTH // steps))
    for title, images in strips.items():
        st.markdown(f"**{title}**")
        st.image(viz.tile(images, ncols=steps, cell=cell), output_format="PNG")
    st.caption("The latent paths decode every step, so each frame is an image the model can make; the cross-fade "
               "just overlays A and B. The latent paths start and end at the reconstructions of A and B.")
    left, right = wrapping_columns("vae_paths", (420, 280))
    with left:
        xy, *path_xy = latent.map_2d(facts["codes"], *paths.values())
        axes = ("z1", "z2") if model.spec.code_size <= 2 else ("PC 1 of the codes", "PC 2 of the codes")
        fig = viz.latent_map_figure(xy, facts["labels"], ds.classes, facts["index"].numpy(),
                                    paths=dict(zip(paths, path_xy)),
                                    marks={"A": path_xy[0][0], "B": path_xy[0][-1]}, axis_titles=axes)
        st.plotly_chart(fig, key="vae_map", on_select=on_map_click, selection_mode="points", width="stretch")
        target = st.session_state.setdefault("vae_target", "A")
        kept(st.radio, "vae_target", "A click on the map picks image", ["A", "B"], index=["A", "B"].index(target),
             horizontal=True, help="After a click the other image is next, so two clicks pick both ends")
    with right:
        st.markdown("**Export**")
        which = st.radio("Animate", list(strips), key="vae_anim")
        ms = st.slider("Frame time (ms)", 40, 500, 120, 20, key="vae_ms")
        gif = viz.gif_bytes(strips[which], duration_ms=ms, cell=160)
        st.image(gif, caption="Plays forth and back", width=160)
        st.download_button("Download GIF", gif, "interpolation.gif", "image/gif", on_click="ignore",
                           icon=":material/animated_images:", key="vae_gif")
        png = viz.png_bytes(viz.tile(torch.cat(list(strips.values())), ncols=steps, cell=cell))
        st.download_button("Download PNG (all three strips)", png, "interpolation.png", "image/png",
                           on_click="ignore", icon=":material/image:", key="vae_png")
    return x0


def reset_sliders():
    """Send the traversal sliders back to the starting code: fresh keys make new sliders at their start values."""
    st.session_state["vae_resets"] = st.session_state.get("vae_resets", 0) + 1


@st.fragment
def traversal(model, base, base_image, order, kl, token):
    """One slider per code dimension, most informative first; each move decodes just the one code."""
    values = base.clone()
    resets = st.session_state.get("vae_resets", 0)
    active = [d for d in order if kl[d] > THRESHOLD]
    inactive = [d for d in order if kl[d] <= THRESHOLD]
    left, right = wrapping_columns("vae_traverse", (360, 240))

    def slider(d):
        reach = max(3.0, float(base[d].abs().ceil()))
        key = f"vae_z{d}_{token}_{resets}"
        values[d] = st.slider(f"z{d + 1} · KL {kl[d]:.2f} nats", -reach, reach, round(float(base[d]), 2), 0.05,
                              key=key)

    with left:
        cols = st.columns(2)
        for i, d in enumerate(active):
            with cols[i % 2]:
                slider(d)
        if inactive:
            with st.expander(f"{len(inactive)} inactive dimension(s): moving them barely changes the image"):
                for d in inactive:
                    slider(d)
    with right:
        image = latent.decode_codes(model, values)
        st.image(viz.tile(torch.cat([base_image, image]), cell=160), caption="The start (left) and the decoded code",
                 output_format="PNG")
        st.metric("Change from the start (MSE per pixel)", f"{float(ae.mse(image, base_image)[0]):.4f}")
        st.button("Reset to the start", on_click=reset_sliders, key="vae_reset")


def traverse_tab(model, facts, x0):
    """The KL of each dimension, sliders to move along each, and an overview of what each does."""
    kl = facts["kl"]
    order = latent.rank_by_kl(kl)
    st.plotly_chart(viz.kl_figure(kl, THRESHOLD), width="stretch", config={"displayModeBar": False})
    centre = "the prior's centre (all zeros)"
    options = ["image A's code", centre] if x0 is not None else [centre]
    start = st.radio("Start from", options, horizontal=True, key="vae_start")
    base = ae.encode_dataset(model, x0[None])[0] if start == "image A's code" else torch.zeros(model.spec.code_size)
    token = abs(hash((id(model), tuple(round(v, 4) for v in base.tolist()))))
    traversal(model, base, latent.decode_codes(model, base), order, kl, token)
    shown = order[:min(6, len(order))]
    values = torch.linspace(-3, 3, 9)
    rows = torch.cat([ae.traverse(model, base, d, values) for d in shown])
    st.markdown("**Each dimension from −3 to +3, the others held at the start**")
    st.image(viz.tile(rows, ncols=len(values), cell=72), output_format="PNG")
    st.caption("Rows, top to bottom: " + ", ".join(f"z{d + 1}" for d in shown) + " (most KL first).")


def sample_tab(model):
    """New images decoded from codes drawn from the prior, at a chosen temperature."""
    c1, c2, c3 = wrapping_columns("vae_sample", (240, 180, 150))
    temperature = c1.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key="vae_temp",
                            help="The spread of the codes drawn: below 1 gives typical, smoother images; above 1 "
                                 "gives varied, stranger ones; 0 decodes the prior's centre only")
    n = c2.select_slider("Images", [8, 16, 32, 64], 32, key="vae_n")
    seed = st.session_state.setdefault("vae_seed", 0)
    if c3.button("New samples", icon=":material/casino:", key="vae_new"):
        seed = st.session_state["vae_seed"] = seed + 1
    images = ae.sample(model, n, temperature, seed)
    st.image(viz.tile(images, ncols=16 if n > 16 else 8, cell=56), output_format="PNG")
    st.caption(f"{n} codes drawn from N(0, {temperature:g}²·I) with seed {seed}, then decoded.")


def manifold_tab(model, facts):
    """The images decoded over a plane of the code: the whole code for a 2-D VAE, else a slice through it."""
    size = model.spec.code_size
    if size == 1:
        st.info("A one-dimensional code has no plane to map; the Traverse tab walks along its single axis.")
        return
    n = st.slider("Grid size", 5, 25, 15, key="vae_grid")
    order = latent.rank_by_kl(facts["kl"])
    dims = (0, 1) if size == 2 else (order[0], order[1])
    grid = latent.manifold(model, n, dims)
    st.image(viz.tile(grid, ncols=n, cell=max(16, 720 // n), pad=1), output_format="PNG")
    where = "the prior's 5% to 95% quantiles"
    if size == 2:
        st.caption(f"The whole latent plane: z1 rises left to right and z2 bottom to top, over {where}.")
    else:
        st.caption(f"A slice through the two most informative dimensions, z{dims[0] + 1} (left to right) and "
                   f"z{dims[1] + 1} (bottom to top), over {where}; the other {size - 2} are held at 0.")


ctx = require_model()
model, ds = ctx.model, ctx.dataset
st.title("VAE lab")
st.caption("A variational autoencoder encodes each image as a small cloud in code space, pulled towards a standard "
           "normal prior, so every point of that space decodes to a plausible image: walk between images, sample "
           "new ones and turn one dimension at a time.")
if not model.spec.variational:
    vaes = [label for label in model_options(dataset_family(ctx.dataset_name)) if "vae" in label.lower()]
    hint = f"pick one in the sidebar, e.g. “{vaes[0]}”, or " if vaes else ""
    st.info(f"The VAE lab needs a variational model and “{ctx.model_label}” is not one: {hint}train one with the "
            "**vae** preset on the Train page.")
    st.page_link("app_pages/train.py", label="Train a VAE", icon=":material/model_training:")
    st.stop()

facts = analysis(model, ds, ctx.dataset_name)
health = latent.posterior_health(facts["kl"], THRESHOLD)
row = wrapping_row()
row.metric("Code size", health["dims"], width=METRIC_WIDTH)
row.metric("Active units", f"{health['active']} of {health['dims']}", width=METRIC_WIDTH,
           help=f"Dimensions whose mean KL from the prior is above {THRESHOLD} nats: the ones the decoder listens to")
row.metric("Total KL", f"{health['total']:.2f} nats", help="Per image, summed over the dimensions", width=METRIC_WIDTH)
row.metric("β", f"{model.spec.beta:g}", help="The weight of the KL term in the loss", width=METRIC_WIDTH)
if health["collapsed"]:
    st.error(f"The posterior has collapsed: the codes carry almost no information (total KL {health['total']:.3f} "
             f"nats, {health['active']} active units), so every image decodes to nearly the same picture. "
             "Train longer, lower β, or use a stronger encoder.", icon=":material/warning:")
elif health["active"] < health["dims"]:
    inactive = health["dims"] - health["active"]
    st.info(f"{inactive} of the {health['dims']} dimensions {'is' if inactive == 1 else 'are'} inactive: the model "
            f"uses a code of {health['active']}; the others stay at the prior and the decoder ignores them.")

tab_i, tab_t, tab_s, tab_m = st.tabs(["Interpolate", "Traverse", "Sample", "Manifold"])
with tab_i:
    image_a = interpolation_tab(model, ds, ctx.dataset_name, facts)
with tab_t:
    traverse_tab(model, facts, image_a)
with tab_s:
    sample_tab(model)
with tab_m:
    manifold_tab(model, facts)
