import streamlit as st

st.title("latent")
st.info("This page is being built.")
