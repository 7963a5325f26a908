"""Reading and writing, for untrusted inputs: ``plan`` (what a command reads and writes, checked
first) over ``data`` over ``dumps`` over ``checkpoints`` over ``hdf5`` over ``guards`` (imports point down)."""
