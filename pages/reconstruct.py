import streamlit as st

st.title("reconstruct")
