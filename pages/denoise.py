import streamlit as st

st.title("denoise")
