"""The paper's sections, one module each (GAP vs GMP, fine-grained, generic features, discovery, VQA, units, video)."""
