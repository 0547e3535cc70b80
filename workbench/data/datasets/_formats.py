"""Readers for the multi-label formats users have, and format detection.

Each reader returns a :class:`~workbench.data.datasets.MultiLabelDataset` and fails with a
one-line ``ValueError`` naming the file and the line or key on malformed input.

Why one module of about 660 lines: six readers of about 80 lines each share the
detection of formats and the resolution and checking of image paths; the container they
return is apart, in ``_container.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from workbench.data.datasets._container import MultiLabelDataset
from workbench.data.labels import Vocabulary, control_character

__all__ = [
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

# ---------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------

#: Format names of :func:`load_dataset` (and the CLI's ``--format``), besides ``"auto"``.
FORMATS = ("scenes", "list-csv", "multihot-csv", "coco", "yolo", "voc")

#: File extensions (lower case) that :func:`read_yolo` treats as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_FORMAT_HINT = "name it with --format (format= in Python), one of: " + ", ".join(FORMATS)


def read_multihot_csv(path: str | Path, *, image_root: str | Path | None = None) -> MultiLabelDataset:
    """Read a multi-hot CSV: ``Filenames,label1,label2,…`` with a 0 or 1 per label.

    The first column holds the image file (its header name is free); every other
    header cell is a label, and the vocabulary keeps the column order. Images whose
    row is all zeros are kept with an empty label set.

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, an optional byte-order mark is skipped).
    image_root : str or Path, optional
        Folder the image names are relative to. By default the CSV's folder: a name
        not found beside the CSV but found as ``images/<name>`` becomes
        ``images/<name>`` (the layout of ``miml_scenes``); otherwise it is kept as is.
        With ``image_root`` given, names are taken relative to it unchanged.

    Returns
    -------
    MultiLabelDataset
        ``format="multihot-csv"``; image paths relative to ``root``.

    Raises
    ------
    ValueError
        A malformed row, naming the file, the line and the column, for example
        ``labels.csv line 7: expected 0 or 1 in column 'sea', got '2'``.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    header = [cell.strip() for cell in header]
    if len(header) < 2:
        raise ValueError(f"{path} line 1: expected a header 'image,label1,label2,…' with at least one label column; got {header}.")
    try:
        vocabulary = Vocabulary(tuple(header[1:]))
    except ValueError as error:
        raise ValueError(f"{path} line 1: {error}") from None
    names, label_sets = [], []
    for line, row in rows:
        _check_width(path, line, row, len(header))
        image = _image_cell(path, line, row[0], header[0])
        labels = []
        for label, cell in zip(header[1:], row[1:]):
            value = cell.strip()
            if value == "1":
                labels.append(label)
            elif value != "0":
                raise ValueError(f"{path} line {line}: expected 0 or 1 in column {label!r}, got {cell!r}.")
        names.append(image)
        label_sets.append(tuple(labels))
    root, image_paths = _resolve_images(path.parent, image_root, names)
    return MultiLabelDataset(
        image_paths=image_paths,
        label_sets=tuple(label_sets),
        vocabulary=vocabulary,
        root=root,
        name=_csv_name(path),
        format="multihot-csv",
    )


def read_list_csv(
    path: str | Path, *, image_root: str | Path | None = None, separator: str | None = None
) -> MultiLabelDataset:
    """Read a label-list CSV: ``image,labels`` with the labels of an image in one cell.

    Parameters
    ----------
    path : str or Path
        The CSV file. Its header must have an ``image`` and a ``labels`` column
        (any case; other columns are ignored). An empty labels cell is an image with
        an empty label set (kept).
    image_root : str or Path, optional
        As in :func:`read_multihot_csv` (default: the CSV's folder, with the
        ``images/<name>`` fallback).
    separator : str, optional
        What separates labels inside a cell. By default ``"|"`` if any cell contains
        a ``|`` (the form ``workbench scenes`` writes), else ``";"``.

    Returns
    -------
    MultiLabelDataset
        ``format="list-csv"``; vocabulary sorted alphabetically; each label set in the
        order written, duplicates removed.
    """
    path = Path(path)
    entries = _read_list_entries(path, separator)
    names = [image for _, image, _ in entries]
    label_sets = [labels for _, _, labels in entries]
    root, image_paths = _resolve_images(path.parent, image_root, names)
    return MultiLabelDataset(
        image_paths=image_paths,
        label_sets=tuple(label_sets),
        vocabulary=Vocabulary.from_label_sets(label_sets),
        root=root,
        name=_csv_name(path),
        format="list-csv",
    )


def read_scenes(folder: str | Path) -> MultiLabelDataset:
    """Read a data set written by ``workbench scenes`` (see docs/ARCHITECTURE.md).

    Parameters
    ----------
    folder : str or Path
        ``DIR`` with ``DIR/labels.csv`` (``image,labels``, image paths relative to
        ``DIR``, labels joined by ``|``) and ``DIR/vocabulary.csv``
        (``label,group,subgroup``), and optionally ``DIR/clean_labels.csv`` (as
        ``labels.csv``, the same images in the same order: the labels before noise). A
        path to either of the first two CSVs means its folder.

    Returns
    -------
    MultiLabelDataset
        ``format="scenes"``; the vocabulary (with groups and subgroups) in the order
        of ``vocabulary.csv``, which may hold labels no image carries;
        ``clean_label_sets`` from ``clean_labels.csv`` (``None`` without it).
    """
    folder = Path(folder)
    if folder.is_file() and folder.name in ("labels.csv", "vocabulary.csv"):
        folder = folder.parent
    labels_path, vocabulary_path = folder / "labels.csv", folder / "vocabulary.csv"
    for required in (labels_path, vocabulary_path):
        if not required.is_file():
            raise ValueError(
                f"{folder}: no {required.name}; a scenes folder has labels.csv and vocabulary.csv "
                "(written by 'workbench scenes')."
            )
    vocabulary = Vocabulary.read_csv(vocabulary_path)
    entries = _read_list_entries(labels_path, "|")
    for line, _, labels in entries:
        for label in labels:
            if label not in vocabulary:
                raise ValueError(
                    f"{labels_path} line {line}: {vocabulary.unknown_label_message(label)} "
                    "Add it to vocabulary.csv or fix the label."
                )
    clean_label_sets = None
    if (folder / "clean_labels.csv").is_file():
        clean_path = folder / "clean_labels.csv"
        clean = _read_list_entries(clean_path, "|")
        if [image for _, image, _ in clean] != [image for _, image, _ in entries]:
            raise ValueError(f"{clean_path} does not list the images of labels.csv in its order; write the scenes "
                             "again, or remove clean_labels.csv.")
        for line, _, labels in clean:
            for label in labels:
                if label not in vocabulary:
                    raise ValueError(f"{clean_path} line {line}: {vocabulary.unknown_label_message(label)} "
                                     "Add it to vocabulary.csv or fix the label.")
        clean_label_sets = tuple(labels for _, _, labels in clean)
    return MultiLabelDataset(
        image_paths=tuple(image for _, image, _ in entries),
        label_sets=tuple(labels for _, _, labels in entries),
        vocabulary=vocabulary,
        root=folder,
        name=_folder_name(folder),
        format="scenes",
        clean_label_sets=clean_label_sets,
    )


def read_coco(path: str | Path, *, image_root: str | Path | None = None) -> MultiLabelDataset:
    """Read a COCO ``instances_*.json``: image-level label sets from its annotations.

    The label set of an image is the names of the distinct ``category_id`` of its
    annotations (crowd annotations included). Images without annotations are kept
    with an empty label set.

    Parameters
    ----------
    path : str or Path
        The annotation JSON (keys ``images``, ``annotations``, ``categories``).
    image_root : str or Path, optional
        Folder the images' ``file_name`` are relative to. By default the first of
        ``JSON_DIR``, ``JSON_DIR/images``, ``JSON_DIR/SPLIT``, ``JSON_DIR/../SPLIT``,
        ``JSON_DIR/../images/SPLIT`` and ``JSON_DIR/../images`` that holds the first
        image (``SPLIT`` is ``val2017`` for ``instances_val2017.json``), else ``JSON_DIR``.

    Returns
    -------
    MultiLabelDataset
        ``format="coco"``; images in file order; vocabulary in category-id order;
        each label set in vocabulary order.
    """
    from workbench._io import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories'.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(
                f"{path}: no {key!r} list; give a COCO instances_*.json file (captions and image_info files have no labels)."
            )
    categories = {}
    for position, category in enumerate(data["categories"]):
        where = f"categories[{position}]"
        category_id = _json_field(path, where, category, "id", int)
        if category_id in categories:
            raise ValueError(f"{path}: {where}: category id {category_id} appears twice; ids must be unique.")
        categories[category_id] = _json_field(path, where, category, "name", str)
    order = sorted(categories)
    try:
        vocabulary = Vocabulary(tuple(categories[c] for c in order))
    except ValueError as error:
        raise ValueError(f"{path}: categories: {error}") from None
    column = {category_id: position for position, category_id in enumerate(order)}
    row_of, file_names = {}, []
    for position, image in enumerate(data["images"]):
        where = f"images[{position}]"
        image_id = _json_field(path, where, image, "id", (int, str))
        if image_id in row_of:
            raise ValueError(f"{path}: {where}: image id {image_id!r} appears twice; ids must be unique.")
        row_of[image_id] = position
        file_names.append(_json_field(path, where, image, "file_name", str))
    columns = [set() for _ in file_names]
    for position, annotation in enumerate(data["annotations"]):
        where = f"annotations[{position}]"
        image_id = _json_field(path, where, annotation, "image_id", (int, str))
        category_id = _json_field(path, where, annotation, "category_id", int)
        if image_id not in row_of:
            raise ValueError(f"{path}: {where}: image_id {image_id!r} is not in 'images'; fix or remove the annotation.")
        if category_id not in column:
            raise ValueError(
                f"{path}: {where}: category_id {category_id} is not in 'categories'; fix or remove the annotation."
            )
        columns[row_of[image_id]].add(column[category_id])
    if image_root is None:
        image_root = _coco_image_root(path, file_names)
    return MultiLabelDataset(
        image_paths=tuple(file_names),
        label_sets=tuple(tuple(vocabulary.names[c] for c in sorted(s)) for s in columns),
        vocabulary=vocabulary,
        root=Path(image_root),
        name=path.stem,
        format="coco",
    )


def read_yolo(folder: str | Path) -> MultiLabelDataset:
    """Read a YOLO data set: ``classes.txt``, ``images/`` and ``labels/``.

    ``classes.txt`` line ``i`` names class ``i``. Each image ``images/<sub>/<stem>.<ext>``
    (any extension in :data:`IMAGE_EXTENSIONS`, subfolders allowed) has its objects in
    ``labels/<sub>/<stem>.txt``, one ``class cx cy w h`` line each (extra numbers, as
    in segmentation labels, are allowed). The label set is the distinct classes; an
    image without a label file has an empty set. Label files without an image are ignored.

    Parameters
    ----------
    folder : str or Path
        The data-set folder (a path to its ``classes.txt`` means its folder).

    Returns
    -------
    MultiLabelDataset
        ``format="yolo"``; images sorted by path; vocabulary in class-index order.
    """
    folder = Path(folder)
    if folder.is_file() and folder.name == "classes.txt":
        folder = folder.parent
    classes_path, images_dir, labels_dir = folder / "classes.txt", folder / "images", folder / "labels"
    for required, present in (
        (classes_path, classes_path.is_file()),
        (images_dir, images_dir.is_dir()),
        (labels_dir, labels_dir.is_dir()),
    ):
        if not present:
            raise ValueError(f"{folder}: no {required.name}; a YOLO data set has classes.txt, images/ and labels/.")
    lines = _read_text(classes_path).split("\n")  # not splitlines(): a form feed or \x1e is a bad name, not a line break
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"{classes_path} line {number}: empty class name; give one class name per line.")
    try:
        vocabulary = Vocabulary(tuple(line.strip() for line in lines))
    except ValueError as error:
        raise ValueError(f"{classes_path}: {error}") from None
    images = sorted(
        (p.relative_to(images_dir) for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: p.as_posix(),
    )
    label_sets = []
    for image in images:
        label_path = labels_dir / image.with_suffix(".txt")
        classes = _read_yolo_labels(label_path, len(vocabulary)) if label_path.is_file() else set()
        label_sets.append(tuple(vocabulary.names[c] for c in sorted(classes)))
    return MultiLabelDataset(
        image_paths=tuple(("images" / image).as_posix() for image in images),
        label_sets=tuple(label_sets),
        vocabulary=vocabulary,
        root=folder,
        name=_folder_name(folder),
        format="yolo",
    )


def read_voc(folder: str | Path) -> MultiLabelDataset:
    """Read a Pascal VOC data set: one XML annotation per image.

    The annotations are ``folder/Annotations/*.xml``, or the XML files directly in
    ``folder`` when it has no ``Annotations/``. Each gives the image's
    ``<filename>`` and its objects' ``<object><name>`` (objects marked difficult or
    truncated count too). Images are ``JPEGImages/<filename>`` when ``JPEGImages/``
    exists, else ``<filename>`` beside the XML files.

    Parameters
    ----------
    folder : str or Path
        The data-set folder.

    Returns
    -------
    MultiLabelDataset
        ``format="voc"``; images in XML file-name order; vocabulary sorted
        alphabetically; each label set in vocabulary order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; give the VOC folder that holds Annotations/ and JPEGImages/.")
    xml_dir = folder / "Annotations" if (folder / "Annotations").is_dir() else folder
    xml_files = sorted(xml_dir.glob("*.xml"))
    if not xml_files:
        raise ValueError(f"{xml_dir}: no .xml annotation files; a VOC data set has Annotations/*.xml.")
    if (folder / "JPEGImages").is_dir():
        image_dir = "JPEGImages"
    else:
        image_dir = "" if xml_dir == folder else "Annotations"
    file_names, label_sets = [], []
    for xml_path in xml_files:
        file_name, labels = _read_voc_annotation(xml_path)
        file_names.append(f"{image_dir}/{file_name}" if image_dir else file_name)
        label_sets.append(labels)
    vocabulary = Vocabulary.from_label_sets(label_sets, sort=True)
    order = {name: position for position, name in enumerate(vocabulary.names)}
    return MultiLabelDataset(
        image_paths=tuple(file_names),
        label_sets=tuple(tuple(sorted(s, key=order.__getitem__)) for s in label_sets),
        vocabulary=vocabulary,
        root=folder,
        name=_folder_name(folder),
        format="voc",
    )


def detect_format(path: str | Path) -> str:
    """The format of a data-set path, one of :data:`FORMATS`.

    Rules, in order: a folder with ``labels.csv`` and ``vocabulary.csv`` (or either
    file in such a folder) is ``"scenes"``; a folder with ``classes.txt`` and
    ``labels/`` (or a ``classes.txt``) is ``"yolo"``; a folder with ``Annotations/`` or
    ``*.xml`` files is ``"voc"``; a ``.json`` file is ``"coco"``; a ``.csv`` file (or a
    folder's ``labels.csv``) is ``"list-csv"`` when its header has a ``labels`` column,
    else ``"multihot-csv"``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        No rule matches; the message lists the formats and how to name one.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; check the data-set path.")
    if path.is_dir():
        if (path / "labels.csv").is_file() and (path / "vocabulary.csv").is_file():
            return "scenes"
        if (path / "classes.txt").is_file() and (path / "labels").is_dir():
            return "yolo"
        if (path / "Annotations").is_dir() or any(path.glob("*.xml")):
            return "voc"
        if (path / "labels.csv").is_file():
            return _csv_kind(path / "labels.csv")
    else:
        suffix = path.suffix.lower()
        if path.name in ("labels.csv", "vocabulary.csv") and (path.parent / "vocabulary.csv").is_file() and (
            path.parent / "labels.csv"
        ).is_file():
            return "scenes"
        if path.name == "classes.txt":
            return "yolo"
        if suffix == ".json":
            return "coco"
        if suffix == ".csv":
            return _csv_kind(path)
    raise ValueError(f"Cannot tell the data-set format of {path}; {_FORMAT_HINT}.")


def load_dataset(path: str | Path, *, format: str = "auto") -> MultiLabelDataset:
    """Load a data set in any supported format.

    Parameters
    ----------
    path : str or Path
        A file or folder (see each reader for its layout). For the CSV formats a
        folder means its ``labels.csv``; for ``"scenes"`` and ``"yolo"`` a file means
        its folder.
    format : {"auto", "scenes", "list-csv", "multihot-csv", "coco", "yolo", "voc"}
        ``"auto"`` detects it with :func:`detect_format`.

    Returns
    -------
    MultiLabelDataset
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"Unknown data-set format {format!r}; use 'auto' or one of: {', '.join(FORMATS)}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; check the data-set path.")
    if format == "auto":
        format = detect_format(path)
    if format in ("list-csv", "multihot-csv") and path.is_dir():
        path = path / "labels.csv"
        if not path.is_file():
            raise ValueError(f"{path.parent}: no labels.csv; give the CSV file itself.")
    if format in ("scenes", "yolo") and path.is_file():
        path = path.parent
    if format == "coco" and path.is_dir():
        raise ValueError(f"{path}: is a folder; give the COCO annotation file (for example annotations/instances_val2017.json).")
    reader = {
        "scenes": read_scenes,
        "list-csv": read_list_csv,
        "multihot-csv": read_multihot_csv,
        "coco": read_coco,
        "yolo": read_yolo,
        "voc": read_voc,
    }[format]
    return reader(path)


# -- helpers ------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; check the path.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8.") from None


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, cells)`` of every non-blank row."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        rows = []
        for row in reader:
            if row:
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise ValueError(f"{path} line {reader.line_num}: {error}; check the quoting.") from None
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per image.")
    return header, rows


def _check_width(path: Path, line: int, row: list[str], width: int) -> None:
    if len(row) != width:
        raise ValueError(
            f"{path} line {line}: expected {width} fields like the header, got {len(row)}; quote cells that contain commas."
        )


def _image_cell(path: Path, line: int, cell: str, column: str) -> str:
    image = cell.strip()
    if not image:
        raise ValueError(f"{path} line {line}: empty image name in column {column!r}; give every row an image file.")
    return image


def _read_list_entries(path: Path, separator: str | None) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, image, labels)`` of every row of an ``image,labels`` CSV."""
    if separator is not None and (not isinstance(separator, str) or not separator or separator in ",\"\n"):
        raise ValueError(f"separator must be a non-empty string other than a comma, quote or newline; got {separator!r}.")
    header, rows = _read_csv(path)
    lowered = [cell.strip().lower() for cell in header]
    if "image" not in lowered or "labels" not in lowered:
        raise ValueError(f"{path} line 1: expected a header with columns 'image' and 'labels'; got {header}.")
    image_column, labels_column = lowered.index("image"), lowered.index("labels")
    if separator is None:
        separator = "|" if any("|" in row[labels_column] for _, row in rows if len(row) > labels_column) else ";"
    entries = []
    for line, row in rows:
        _check_width(path, line, row, len(header))
        image = _image_cell(path, line, row[image_column], header[image_column])
        cell = row[labels_column]
        labels = tuple(label.strip() for label in cell.split(separator)) if cell.strip() else ()
        if "" in labels:
            raise ValueError(
                f"{path} line {line}: empty label in {cell!r}; remove the doubled, leading or trailing {separator!r}."
            )
        for label in labels:
            character = control_character(label)
            if character is not None:
                raise ValueError(f"{path} line {line}: the label {label!r} contains the control character {character}; "
                                 "remove tabs, line breaks and other control characters from label names.")
        entries.append((line, image, tuple(dict.fromkeys(labels))))
    return entries


def _resolve_images(folder: Path, image_root, names: list[str]) -> tuple[Path, tuple[str, ...]]:
    """Root and image paths for CSV loaders (see :func:`read_multihot_csv`)."""
    if image_root is not None:
        return Path(image_root), tuple(names)
    paths = []
    for name in names:
        if not os.path.exists(folder / name) and os.path.exists(folder / "images" / name):
            name = f"images/{name}"
        paths.append(name)
    return folder, tuple(paths)


def _csv_name(path: Path) -> str:
    if path.stem.lower() in ("labels", "annotations"):
        return _folder_name(path.parent)
    return path.stem


def _folder_name(folder: Path) -> str:
    return folder.resolve().name or str(folder)


def _csv_kind(path: Path) -> str:
    header, _ = _read_csv(path)
    if "labels" in [cell.strip().lower() for cell in header]:
        return "list-csv"
    if len(header) >= 2:
        return "multihot-csv"
    raise ValueError(f"Cannot tell the data-set format of {path} from its header {header}; {_FORMAT_HINT}.")


def _json_field(path: Path, where: str, item, key: str, kind):
    if not isinstance(item, dict) or key not in item:
        raise ValueError(f"{path}: {where}: missing {key!r}; every entry needs one.")
    value = item[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "an integer" if kind is int else "a string" if kind is str else "an integer or string"
        raise ValueError(f"{path}: {where}: {key!r} must be {expected}, got {json.dumps(value)[:60]}.")
    if kind is str and not value.strip():
        raise ValueError(f"{path}: {where}: {key!r} is empty; give it a value.")
    return value


def _coco_image_root(path: Path, file_names: list[str]) -> Path:
    json_dir = path.parent
    split = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
    candidates = [
        json_dir,
        json_dir / "images",
        json_dir / split,
        json_dir.parent / split,
        json_dir.parent / "images" / split,
        json_dir.parent / "images",
    ]
    if file_names:
        for candidate in candidates:
            if (candidate / file_names[0]).is_file():
                return candidate
    return json_dir


def _read_yolo_labels(path: Path, num_classes: int) -> set[int]:
    classes = set()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            raise ValueError(f"{path} line {number}: expected 'class cx cy w h', got {line.strip()!r}.")
        try:
            class_index = int(fields[0])
            [float(value) for value in fields[1:]]
        except ValueError:
            raise ValueError(
                f"{path} line {number}: expected an integer class and numbers 'class cx cy w h', got {line.strip()!r}."
            ) from None
        if not 0 <= class_index < num_classes:
            raise ValueError(
                f"{path} line {number}: class index {class_index} is out of range; classes.txt has "
                f"{num_classes} classes (0 to {num_classes - 1})."
            )
        classes.add(class_index)
    return classes


def _read_voc_annotation(path: Path) -> tuple[str, tuple[str, ...]]:
    """``(filename, labels)`` of one VOC XML file.

    Python's expat (2.4 or later) refuses entity-expansion bombs and ElementTree
    never fetches external entities, so untrusted XML is safe to parse here.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} line {error.position[0]}: not well-formed XML ({error}); fix or remove the file.") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: the root element is <{root.tag}>, expected <annotation>; is this a VOC annotation?")
    file_name = (root.findtext("filename") or "").strip()
    if not file_name:
        raise ValueError(f"{path}: no <filename>; every VOC annotation names its image.")
    labels = []
    for position, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"{path}: <object> number {position} has no <name>; give every object a class name.")
        character = control_character(name)
        if character is not None:
            raise ValueError(f"{path}: the <name> of <object> number {position} ({name!r}) contains the control character "
                             f"{character}; remove tabs, line breaks and other control characters from class names.")
        labels.append(name)
    return file_name, tuple(dict.fromkeys(labels))
