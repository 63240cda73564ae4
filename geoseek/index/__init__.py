"""Vector indexes behind one protocol (:class:`geoseek.index.base.VectorIndex`).

Backends are registered by name in :data:`geoseek.index.base.BACKENDS`; the index knows
nothing of torch or of the models that made the vectors.
"""
