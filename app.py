"""Autoencoder Explorer: the entry point, the shared sidebar and the home page."""
import streamlit as st
import torch

import aecore as ae
from aecore import viz
from pages.common import context, sidebar, umap_warm_up

st.set_page_config(page_title="Autoencoder Explorer", page_icon="⏳", layout="wide")


def home():
    st.title("Autoencoder Explorer")
    st.markdown(
        "An **autoencoder** learns to copy its input through a narrow middle. The **encoder** squeezes each "
        "image into a short **code**; the **decoder** rebuilds the image from the code alone. Because the code is "
        "smaller than the image — the **bottleneck** — the network must keep what matters and drop the rest.")
    ctx = context()
    spec = ctx.model.spec if ctx and ctx.model is not None else ae.preset("conv", ctx.dataset.shape if ctx else (1, 8, 8))[0]
    left, right = st.columns([3, 2])
    with left:
        st.subheader("The hourglass of " + (ctx.model_label if ctx and ctx.model is not None else "a conv autoencoder"))
        st.plotly_chart(viz.hourglass_figure(spec), width="stretch", config={"displayModeBar": False})
        st.caption(f"{spec.input_size:,} input values → a code of {spec.code_size} → {spec.input_size:,} output "
                   f"values · compression {spec.input_size / spec.code_size:.1f}× · {spec.param_count():,} parameters")
    with right:
        st.subheader("A guided path")
        st.page_link("pages/train.py", label="1. Train — pick a type, watch the loss fall and the digits sharpen",
                     icon="🏋️")
        st.page_link("pages/reconstruct.py", label="2. Reconstruct — inputs, outputs and their error, worst first",
                     icon="🔁")
        st.page_link("pages/denoise.py", label="3. Denoise — add noise and see what the model removes", icon="✨")
        st.page_link("pages/latent.py", label="4. Latent space — map the codes, click into clusters", icon="🗺️")
        st.page_link("pages/vae_lab.py", label="5. VAE lab — interpolate, sample and traverse a VAE's code",
                     icon="🧪")
        st.page_link("pages/compare.py", label="6. Compare — what a bottleneck costs, model against model",
                     icon="📊")
        st.markdown("Try a small code (2–4) and a large one (32): the smaller the code, the blurrier the copy — "
                    "and the more the model had to *understand* to make it.")
    if ctx and ctx.model is not None:
        x = ctx.dataset.images[:8]
        st.subheader("Inputs (top) and their reconstructions (bottom)")
        st.image(viz.tile(torch.cat([x, ae.reconstruct(ctx.model, x)])), width="content")


pages = [
    st.Page(home, title="Home", icon="⏳", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/reconstruct.py", title="Reconstruct", icon="🔁"),
    st.Page("pages/denoise.py", title="Denoise", icon="✨"),
    st.Page("pages/latent.py", title="Latent space", icon="🗺️"),
    st.Page("pages/vae_lab.py", title="VAE lab", icon="🧪"),
    st.Page("pages/compare.py", title="Compare", icon="📊"),
]
umap_warm_up()
page = st.navigation(pages)
st.session_state["ctx"] = sidebar()
page.run()
