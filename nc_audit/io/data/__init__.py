"""Datasets: built-ins, user arrays (.npz, HDF5) and text corpora, checked before they are read."""
