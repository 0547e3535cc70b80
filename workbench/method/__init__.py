"""The method, step by step (NumPy and SciPy only; nothing here imports Keras).

``cooccurrence`` (count labels and pairs) → ``pmi`` (the PMI matrix and its policies)
→ ``eigensolvers`` (eigenpairs of a symmetric matrix; knows nothing about labels)
→ ``embed`` (the one coordinator: counts → PMI → ``E = U Σ^½``, :class:`EmbeddingOptions`)
→ ``embedding`` (the :class:`LabelEmbedding` artefact) → ``decoding`` (scores and ranked
labels of predicted points).
"""
