"""Autoencoder Explorer: the entry point, the shared sidebar and the home page."""
import streamlit as st
import torch

import aecore as ae
from aecore import viz
from app_pages.common import context, keep_page_settings, sidebar, umap_warm_up, wrapping_columns

st.set_page_config(page_title="Autoencoder Explorer", page_icon=":material/hourglass_empty:", layout="wide")

# (file, title, icon, what a person does there): the navigation and the guided path are both built from this
PAGES = [
    ("app_pages/train.py", "Train", ":material/model_training:",
     "pick a type, tune it, and watch the loss fall and the reconstructions sharpen"),
    ("app_pages/reconstruct.py", "Reconstruct", ":material/compare:",
     "inputs beside outputs and their error, the worst first; upload or draw your own"),
    ("app_pages/denoise.py", "Denoise", ":material/auto_fix_high:",
     "add noise and see what the model removes, against a classical filter"),
    ("app_pages/latent.py", "Latent space", ":material/scatter_plot:",
     "map the codes with PCA, t-SNE or UMAP and click into the clusters"),
    ("app_pages/vae_lab.py", "VAE lab", ":material/science:",
     "interpolate, sample and traverse the code of a variational autoencoder"),
    ("app_pages/compare.py", "Compare", ":material/bar_chart:",
     "what a bottleneck costs: code size against error, beside PCA; models side by side"),
]


def home():
    st.title("Autoencoder Explorer")
    st.markdown(
        "An **autoencoder** learns to copy its input through a narrow middle. The **encoder** squeezes each "
        "image into a short **code**; the **decoder** rebuilds the image from the code alone. Because the code is "
        "smaller than the image — the **bottleneck** — the network must keep what matters and drop the rest.")
    ctx = context()
    has_model = ctx is not None and ctx.model is not None
    spec = ctx.model.spec if has_model else ae.preset("conv", ctx.dataset.shape if ctx else (1, 8, 8))[0]
    left, right = wrapping_columns("home_columns", (420, 280), gap="large")
    with left:
        st.subheader("The hourglass of " + (ctx.model_label.split(": ", 1)[-1] if has_model else "a conv autoencoder"))
        st.plotly_chart(viz.hourglass_figure(spec), width="stretch", config={"displayModeBar": False})
        st.caption(f"{spec.input_size:,} input values → a code of {spec.code_size} → {spec.input_size:,} output "
                   f"values · compression {spec.input_size / spec.code_size:.1f}× · {spec.param_count():,} parameters")
    with right:
        st.subheader("A guided path")
        for i, (path, title, icon, what) in enumerate(PAGES, 1):
            st.page_link(path, label=f"{i}. {title}", icon=icon)
            st.caption(what)
    if has_model:
        x = ctx.dataset.images[:8]
        st.subheader("Inputs (top) and their reconstructions (bottom)")
        st.image(viz.tile(torch.cat([x, ae.reconstruct(ctx.model, x)])), width="content", output_format="PNG")
        st.markdown("Try a small code (2–4) and a large one (32) on the **Train** page: the smaller the code, the "
                    "blurrier the copy — and the more the model had to *understand* to make it.")


umap_warm_up()
keep_page_settings()
page = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True)]
                     + [st.Page(path, title=title, icon=icon) for path, title, icon, _ in PAGES])
st.session_state["ctx"] = sidebar()
page.run()
