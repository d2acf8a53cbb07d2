import streamlit as st

st.title("vae_lab")
st.info("This page is being built.")
