"""gradtools: kernels and study code for gradient-level learning dynamics.

Public kernels (a contract the notebooks rely on):

* :func:`gradient_gram` - pairwise per-example gradient dot products (shared-gradient-discovery D.2);
  ``layers="all"`` over every parameter, ``per_layer=True`` per layer
* :func:`gradient_svd` - top singular triplets of the per-example gradient matrix, from the Gram
* :func:`hvp`, :func:`lanczos` - Hessian-vector products and top eigenpairs (POLCA algorithm 1)
* :func:`directional_derivatives` - per-example first and second directional derivatives (POLCA terms)
"""
from . import (addition, alignment, cache, checkpoint_sources, curvature, distributed, gram, lm,
               lm_training, olmo_checkpoints, paths, polca, pos_labels, profiles, prompt_tasks, wikipedia, wikipedia_lm)
from .curvature import directional_derivatives, hessian_matvec, hvp, lanczos
from .gram import GradientGram, GradientSVD, gradient_gram, gradient_svd, gram_block, per_example_gradients

__all__ = ["GradientGram", "GradientSVD", "gradient_gram", "gradient_svd", "gram_block", "per_example_gradients",
           "hvp", "hessian_matvec", "lanczos", "directional_derivatives",
           "addition", "alignment", "cache", "checkpoint_sources", "curvature", "distributed", "gram",
           "lm", "lm_training", "olmo_checkpoints", "paths", "polca", "pos_labels", "profiles", "prompt_tasks", "wikipedia", "wikipedia_lm"]
