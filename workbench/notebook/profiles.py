"""Run-size profiles of the notebooks: ``ci``, ``workshop`` and ``full``.

Every size a notebook uses comes from one :class:`Profile`; the first code cell of
each notebook copies the fields it needs into its own variables (one per line) so a
reader can change any of them before running. The main job (``workbench run``) and
the notebook tests choose the profile through ``WORKBENCH_PROFILE``.

``ci``
    Tiny: the five notebooks together run in about 70 seconds on a 2-core CPU,
    kernel start-up and TensorFlow import included. The numbers are too small to
    mean much; the notebooks' assertions only check what must hold at any size.
``workshop`` (the default)
    Meaningful results on a laptop CPU within a few minutes per notebook: 3,000
    images of 32×32 pixels with 100 labels, three heads compared over two seeds.
``full``
    GPU-sized: 40,000 images of 64×64 pixels with 400 labels, three seeds.

Sizes were chosen by measuring on the project's 2-core CI machine (see the report
in ``tests/test_notebooks.py``): training a small trunk runs at roughly 300 images
per second at 32×32 there, so an epoch of the workshop profile takes about ten
seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Profile", "PROFILE_NAMES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Every size parameter of the notebooks.

    Data (emoji scenes, :func:`workbench.data.scenes.generate_scenes`)
        ``num_images``, ``num_labels``, ``image_size`` (pixels per side),
        ``max_labels`` (glyphs per image), ``missing_rate`` and ``spurious_rate``
        (label noise), ``validation_fraction`` (images held out of counting and
        training; the PMI embedding never sees them).
    PMI and embedding
        ``pmi_policy`` and ``pmi_diagonal`` (:func:`workbench.method.pmi.pmi_matrix`),
        ``embedding_dim`` (``k``), ``map_method`` (``"umap"`` or ``"pca"``, the 2-D
        label map).
    Training (:mod:`workbench.learning.training`)
        ``epochs``, ``batch_size``, ``trunk_width`` (channels of the first block),
        ``trunk_depth`` (blocks), ``batchnorm_momentum`` (lower for runs of few
        steps, so that validation sees settled batch-norm statistics),
        ``comparison_heads``, ``comparison_seeds``.
    Classification
        ``num_demo_images`` (fresh scenes classified when nobody uploads), ``top_n``.
    """

    name: str
    num_images: int
    num_labels: int
    image_size: int
    max_labels: int
    missing_rate: float
    spurious_rate: float
    validation_fraction: float
    pmi_policy: str
    pmi_diagonal: str
    embedding_dim: int
    map_method: str
    epochs: int
    batch_size: int
    trunk_width: int
    trunk_depth: int
    batchnorm_momentum: float
    comparison_heads: tuple[str, ...]
    comparison_seeds: tuple[int, ...]
    num_demo_images: int
    top_n: int

    def embedding_options(self):
        """The :class:`~workbench.method.embed.EmbeddingOptions` of this profile (``embedding_dim``, PMI policy, diagonal)."""
        from workbench.method.embed import EmbeddingOptions

        return EmbeddingOptions(embedding_dim=self.embedding_dim, policy=self.pmi_policy, diagonal=self.pmi_diagonal)

    def data_settings(self, *, random_state: int = 0) -> dict:
        """The data set's settings: the scenes' (``num_images`` … ``random_state``) and ``validation_fraction``."""
        return {"num_images": self.num_images, "num_labels": self.num_labels, "image_size": self.image_size,
                "max_labels": self.max_labels, "missing_rate": self.missing_rate, "spurious_rate": self.spurious_rate,
                "random_state": int(random_state), "validation_fraction": self.validation_fraction}

    def to_dict(self) -> dict:
        """The profile as a JSON-serialisable dict."""
        out = asdict(self)
        out["comparison_heads"] = list(self.comparison_heads)
        out["comparison_seeds"] = list(self.comparison_seeds)
        return out


_PROFILES = {
    "ci": Profile(
        name="ci",
        num_images=1600,
        num_labels=40,
        image_size=32,
        max_labels=5,
        missing_rate=0.05,
        spurious_rate=0.05,
        validation_fraction=0.2,
        pmi_policy="zero",
        pmi_diagonal="self",
        embedding_dim=16,
        map_method="pca",
        epochs=5,
        batch_size=64,
        trunk_width=16,
        trunk_depth=3,
        batchnorm_momentum=0.9,
        comparison_heads=("pmi", "sigmoid", "random"),
        comparison_seeds=(0,),
        num_demo_images=64,
        top_n=5,
    ),
    "workshop": Profile(
        name="workshop",
        num_images=3000,
        num_labels=100,
        image_size=32,
        max_labels=6,
        missing_rate=0.05,
        spurious_rate=0.05,
        validation_fraction=0.2,
        pmi_policy="zero",
        pmi_diagonal="self",
        embedding_dim=32,
        map_method="umap",
        epochs=6,
        batch_size=64,
        trunk_width=16,
        trunk_depth=3,
        batchnorm_momentum=0.95,
        comparison_heads=("pmi", "sigmoid", "random"),
        comparison_seeds=(0, 1),
        num_demo_images=64,
        top_n=5,
    ),
    "full": Profile(
        name="full",
        num_images=40000,
        num_labels=400,
        image_size=64,
        max_labels=6,
        missing_rate=0.05,
        spurious_rate=0.05,
        validation_fraction=0.1,
        pmi_policy="zero",
        pmi_diagonal="self",
        embedding_dim=64,
        map_method="umap",
        epochs=20,
        batch_size=128,
        trunk_width=32,
        trunk_depth=4,
        batchnorm_momentum=0.99,
        comparison_heads=("pmi", "random", "identity", "sigmoid"),
        comparison_seeds=(0, 1, 2),
        num_demo_images=256,
        top_n=5,
    ),
}


#: The profile names, smallest first.
PROFILE_NAMES = tuple(_PROFILES)


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name`` (``"ci"``, ``"workshop"`` or ``"full"``).

    Raises
    ------
    ValueError
        For any other name, listing the three.
    """
    try:
        return _PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
            "(set WORKBENCH_PROFILE or pass --profile)."
        ) from None
