"""Multi-label data sets: the container every step reads, and readers for real formats.

A :class:`MultiLabelDataset` holds image references (paths relative to a root
folder, or images in memory) with one label set per image and the
:class:`~workbench.data.labels.Vocabulary`. :func:`load_dataset` detects the format of a
path and calls its reader (multi-hot CSV, list CSV, emoji scenes, COCO, YOLO, VOC).
"""

from workbench.data.datasets._container import MultiLabelDataset
from workbench.data.datasets._formats import (
    FORMATS,
    IMAGE_EXTENSIONS,
    detect_format,
    load_dataset,
    read_coco,
    read_list_csv,
    read_multihot_csv,
    read_scenes,
    read_voc,
    read_yolo,
)

__all__ = [
    "MultiLabelDataset",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "load_dataset",
    "detect_format",
    "read_list_csv",
    "read_multihot_csv",
    "read_scenes",
    "read_coco",
    "read_yolo",
    "read_voc",
]
