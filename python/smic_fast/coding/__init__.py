"""Embeddings to bits: the coding dictionary and its tables, the item symbols, the quantizer, the range coder and the transform-coded refinement layer."""
