"""Pure PyTorch/numpy analyses of units and layers (no Django imports), one module per analysis:
each takes tensors and a config dataclass and returns a named result, documented with the paper
and the formula it implements. Only the atlas's job work (`backend/atlas/work.py`) calls them."""
