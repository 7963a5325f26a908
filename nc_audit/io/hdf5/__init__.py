"""Untrusted HDF5 files: links, attributes, virtual and external storage resolved before a byte is read."""
