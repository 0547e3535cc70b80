"""Learning: training one head (step 4 of the method), the Keras side.

``config`` (hyper-parameters, no Keras) → ``models`` (trunk, heads, cosine loss) →
``feeding`` (batches) → ``callbacks`` (the per-epoch validation callback) → ``runs``
(the run folder and :class:`TrainedRun`, the one scoring path) → ``training`` (train and
resume). ``devices`` says where training runs; ``startup`` imports Keras quietly. The label
vectors each head is trained against come from :mod:`workbench.method.targets`; measuring
lives in :mod:`workbench.evaluation`, multi-run experiments in :mod:`workbench.experiments`.
"""
