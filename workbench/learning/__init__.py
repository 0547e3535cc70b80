"""Learning: Keras models trained against label embeddings, their runs, and comparisons of heads.

``models`` (trunk, heads, cosine loss) ← ``targets`` (the label vectors each head is
trained against) ← ``feeding`` (batches) → ``training`` (train and resume) → ``runs``
(the run folder and :class:`TrainedRun`, the one scoring path) → ``experiments``
(``compare``: every head and seed against one embedding) → ``comparison`` (reading
results, Keras-free). ``metrics`` (NumPy) and ``evaluation`` (the per-epoch callback)
measure; ``devices`` says where training runs.
"""
