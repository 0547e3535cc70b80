"""Tests for the data-set loaders in workbench.data.datasets (small fixtures in every format)."""

import json

import numpy as np
import pytest

from workbench.data.datasets import (
    FORMATS,
    MultiLabelDataset,
    detect_format,
    load_dataset,
    read_coco,
    read_list_csv,
    read_multihot_csv,
    read_scenes,
    read_voc,
    read_yolo,
)
from workbench.data.labels import Vocabulary


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- multi-hot CSV ------------------------------------------------------------------
MULTIHOT = "Filenames,desert,mountains,sea,sunset,trees\n1.jpg,1,0,0,0,0\n2.jpg,0,0,1,1,0\n3.jpg,0,0,0,0,0\n"


def test_multihot_csv(tmp_path):
    path = write(tmp_path / "labels.csv", MULTIHOT)
    dataset = read_multihot_csv(path)
    assert dataset.format == "multihot-csv" and dataset.name == tmp_path.name
    assert dataset.vocabulary.names == ("desert", "mountains", "sea", "sunset", "trees")
    assert dataset.label_sets == (("desert",), ("sea", "sunset"), ())
    assert dataset.image_paths == ("1.jpg", "2.jpg", "3.jpg") and dataset.root == tmp_path
    np.testing.assert_array_equal(dataset.labels.toarray(), [[1, 0, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]])


def test_multihot_csv_finds_images_folder(tmp_path):
    path = write(tmp_path / "labels.csv", MULTIHOT)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(b"x")
    (tmp_path / "2.jpg").write_bytes(b"x")
    dataset = read_multihot_csv(path)
    # 1.jpg only under images/, 2.jpg beside the CSV, 3.jpg nowhere (kept as written).
    assert dataset.image_paths == ("images/1.jpg", "2.jpg", "3.jpg")
    assert dataset.path_of(0) == tmp_path / "images" / "1.jpg"
    other = read_multihot_csv(path, image_root=tmp_path / "elsewhere")
    assert other.image_paths == ("1.jpg", "2.jpg", "3.jpg") and other.root == tmp_path / "elsewhere"


def test_multihot_csv_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(("\ufeff" + MULTIHOT.replace("\n", "\r\n")).encode("utf-8"))
    dataset = read_multihot_csv(path)
    assert dataset.vocabulary.names[0] == "desert" and len(dataset) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("Filenames,sea\n1.jpg,1\n2.jpg,2\n", r"labels\.csv line 3: expected 0 or 1 in column 'sea', got '2'"),
        ("Filenames,sea,sky\n1.jpg,1\n", r"labels\.csv line 2: expected 3 fields like the header, got 2"),
        ("Filenames,sea,sea\n1.jpg,1,0\n", r"labels\.csv line 1: Label 'sea' appears twice"),
        ("Filenames\n1.jpg\n", r"labels\.csv line 1: expected a header"),
        ("Filenames,sea\n,1\n", r"labels\.csv line 2: empty image name"),
        ("", r"labels\.csv: the file is empty"),
    ],
)
def test_multihot_csv_malformed(tmp_path, text, message):
    path = write(tmp_path / "labels.csv", text)
    with pytest.raises(ValueError, match=message) as raised:
        read_multihot_csv(path)
    assert "\n" not in str(raised.value)


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"Filenames,caf\xe9\n1.jpg,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv: not UTF-8"):
        read_multihot_csv(path)


# -- list CSV -----------------------------------------------------------------------
def test_list_csv_pipe_and_empty_cell(tmp_path):
    path = write(
        tmp_path / "tags.csv",
        'image,labels\na.png,cat|dog\nb.png,\nc.png,"dog | cat|dog"\nd.png,"smile; wink"\n',
    )
    dataset = read_list_csv(path)
    assert dataset.format == "list-csv" and dataset.name == "tags"
    assert dataset.label_sets == (("cat", "dog"), (), ("dog", "cat"), ("smile; wink",))
    assert dataset.vocabulary.names == ("cat", "dog", "smile; wink")
    assert dataset.summary()["num_empty_images"] == 1


def test_list_csv_semicolon_detected(tmp_path):
    path = write(tmp_path / "labels.csv", "Labels,Image\nsea;sky,a.jpg\nsky,b.jpg\n")
    dataset = read_list_csv(path)
    assert dataset.label_sets == (("sea", "sky"), ("sky",)) and dataset.image_paths == ("a.jpg", "b.jpg")
    assert read_list_csv(path, separator="|").label_sets == (("sea;sky",), ("sky",))


@pytest.mark.parametrize(
    "text, message",
    [
        ("image,tags\na.png,cat\n", r"line 1: expected a header with columns 'image' and 'labels'"),
        ("image,labels\na.png,cat||dog\n", r"line 2: empty label in 'cat\|\|dog'"),
        ("image,labels\na.png,cat\nb.png,cat|\n", r"line 3: empty label"),
        ("image,labels\na.png,cat,dog\n", r"line 2: expected 2 fields"),
        ('image,labels\na.png,"cat\n', r"labels\.csv line 2: unexpected end of data; check the quoting"),
        ('image,labels\na.png,"cat"x\n', r"labels\.csv line 2: .*; check the quoting"),
    ],
)
def test_list_csv_malformed(tmp_path, text, message):
    path = write(tmp_path / "labels.csv", text)
    with pytest.raises(ValueError, match=message):
        read_list_csv(path)


def test_label_names_with_control_characters_are_refused_in_every_format(tmp_path):
    """A tab or a line break inside a label name would split a Projector TSV row or a one-line output."""
    cases = [
        (read_list_csv, write(tmp_path / "list" / "labels.csv", 'image,labels\n1.jpg,cat|dog\n2.jpg,"sea|hot\tdog"\n'),
         r"labels\.csv line 3: the label 'hot\\tdog' contains the control character '\\t'"),
        (read_list_csv, write(tmp_path / "list2" / "labels.csv", 'image,labels\n1.jpg,"two\nlines"\n'),
         r"labels\.csv line \d: the label 'two\\nlines' contains the control character '\\n'"),
        (read_multihot_csv, write(tmp_path / "multihot.csv", 'Filenames,sea,sun\x1fset\n1.jpg,1,0\n'),
         r"multihot\.csv line 1: Label 1 \('sun\\x1fset'\) contains the control character '\\x1f'"),
        (read_coco, write(tmp_path / "instances.json", coco_json(categories=[
            {"id": 18, "name": "dog", "supercategory": "animal"}, {"id": 1, "name": "per\nson", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"}])),
         r"instances\.json: categories: Label \d \('per\\nson'\) contains the control character '\\n'"),
    ]
    yolo = tmp_path / "yolo"
    write(yolo / "classes.txt", "person\nbi\x0bcycle\n")
    (yolo / "images").mkdir()
    (yolo / "labels").mkdir()
    cases.append((read_yolo, yolo, r"classes\.txt: Label 1 \('bi\\x0bcycle'\) contains the control character '\\x0b'"))
    voc = tmp_path / "voc"
    write(voc / "Annotations" / "1.xml", voc_xml("1.jpg", "dog", "pot\ted plant"))
    (voc / "JPEGImages").mkdir()
    cases.append((read_voc, voc, r"1\.xml: the <name> of <object> number 2 \('pot\\ted plant'\) contains the control character '\\t'"))
    scenes = make_scenes(tmp_path / "scenes")
    write(scenes / "vocabulary.csv", 'label,group,subgroup\ncat,Animals,mammal\n"dog\nface",Animals,mammal\n')
    cases.append((read_scenes, scenes, r"vocabulary\.csv: Label 1 \('dog\\nface'\) contains the control character '\\n'"))
    for reader, path, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            reader(path)
        assert "\n" not in str(error.value), reader.__name__


# -- scenes -------------------------------------------------------------------------
def make_scenes(folder, labels_text=None):
    write(
        folder / "vocabulary.csv",
        "label,group,subgroup\ndog face,Animals & Nature,animal-mammal\ncat,Animals & Nature,animal-mammal\n"
        "sun,Travel & Places,sky & weather\nunused,Objects,tool\n",
    )
    write(folder / "labels.csv", labels_text or "image,labels\nimages/000000.png,cat|sun\nimages/000001.png,\nimages/000002.png,dog face\n")
    return folder


def test_scenes(tmp_path):
    folder = make_scenes(tmp_path / "scenes")
    dataset = read_scenes(folder)
    assert dataset.format == "scenes" and dataset.name == "scenes" and dataset.root == folder
    assert dataset.vocabulary.names == ("dog face", "cat", "sun", "unused")
    assert dataset.vocabulary.subgroups[2] == "sky & weather"
    assert dataset.image_paths == ("images/000000.png", "images/000001.png", "images/000002.png")
    assert dataset.label_sets == (("cat", "sun"), (), ("dog face",))
    summary = dataset.summary()
    assert summary["num_unused_labels"] == 1 and summary["num_empty_images"] == 1
    assert read_scenes(folder / "labels.csv").label_sets == dataset.label_sets


def test_scenes_errors(tmp_path):
    folder = make_scenes(tmp_path / "s", "image,labels\nimages/0.png,cat\nimages/1.png,cot|sun\n")
    with pytest.raises(ValueError, match=r"labels\.csv line 3: Unknown label 'cot'.*'cat'.*vocabulary\.csv"):
        read_scenes(folder)
    (folder / "vocabulary.csv").unlink()
    with pytest.raises(ValueError, match="no vocabulary.csv"):
        read_scenes(folder)


# -- COCO ---------------------------------------------------------------------------
def coco_json(**overrides):
    data = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 4, "height": 4},
            {"id": 11, "file_name": "b.jpg", "width": 4, "height": 4},
            {"id": 12, "file_name": "c.jpg", "width": 4, "height": 4},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 18, "bbox": [0, 0, 1, 1]},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]},
            {"id": 3, "image_id": 10, "category_id": 18, "bbox": [1, 1, 1, 1]},
            {"id": 4, "image_id": 12, "category_id": 3, "bbox": [0, 0, 1, 1], "iscrowd": 1},
        ],
        "categories": [
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ],
    }
    data.update(overrides)
    return json.dumps(data)


def test_coco(tmp_path):
    path = write(tmp_path / "annotations" / "instances_val2017.json", coco_json())
    (tmp_path / "val2017").mkdir()
    (tmp_path / "val2017" / "a.jpg").write_bytes(b"x")
    dataset = read_coco(path)
    assert dataset.format == "coco" and dataset.name == "instances_val2017"
    assert dataset.vocabulary.names == ("person", "car", "dog")  # by category id
    assert dataset.label_sets == (("person", "dog"), (), ("car",))  # b.jpg kept, empty
    assert dataset.root == tmp_path / "val2017" and dataset.path_of(0).is_file()
    assert read_coco(path, image_root=tmp_path).root == tmp_path
    assert load_dataset(path).label_sets == dataset.label_sets


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"annotations": [{"id": 1, "image_id": 10, "category_id": 99}]}, r"annotations\[0\]: category_id 99 is not in 'categories'"),
        ({"annotations": [{"id": 1, "image_id": 77, "category_id": 1}]}, r"annotations\[0\]: image_id 77 is not in 'images'"),
        ({"annotations": [{"id": 1, "image_id": 10}]}, r"annotations\[0\]: missing 'category_id'"),
        ({"images": [{"id": 1}]}, r"images\[0\]: missing 'file_name'"),
        ({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []}, r"images\[1\]: image id 1 appears twice"),
        ({"categories": [{"id": "1", "name": "x"}], "annotations": []}, r"categories\[0\]: 'id' must be an integer"),
        ({"categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "x"}], "annotations": []}, r"categories: Label 'x' appears twice"),
        ({"annotations": None}, r"no 'annotations' list"),
    ],
)
def test_coco_malformed(tmp_path, overrides, message):
    path = write(tmp_path / "instances.json", coco_json(**overrides))
    with pytest.raises(ValueError, match=message):
        read_coco(path)


def test_coco_not_json(tmp_path):
    path = write(tmp_path / "instances.json", '{"images": [}')
    with pytest.raises(ValueError, match=r"instances\.json: not valid JSON \(line 1"):
        read_coco(path)


# -- YOLO ---------------------------------------------------------------------------
def make_yolo(folder, extra_label_line=None):
    write(folder / "classes.txt", "person\nbicycle\ncar\ndog\n\n")
    for name in ("000001.jpg", "000002.png", "000003.jpg", "sub/000004.jpg"):
        (folder / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / name).write_bytes(b"x")
    (folder / "images" / "notes.txt").write_bytes(b"not an image")
    write(folder / "labels" / "000001.txt", "3 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1\n3 0.7 0.7 0.1 0.1\n")
    write(folder / "labels" / "000002.txt", "\n2 0.5 0.5 0.5 0.5 0.6 0.6\n" + (extra_label_line or ""))
    write(folder / "labels" / "sub" / "000004.txt", "1 0.5 0.5 0.5 0.5\n")
    write(folder / "labels" / "orphan.txt", "0 0.5 0.5 0.5 0.5\n")
    return folder


def test_yolo(tmp_path):
    folder = make_yolo(tmp_path / "yolo")
    dataset = read_yolo(folder)
    assert dataset.format == "yolo" and dataset.name == "yolo"
    assert dataset.vocabulary.names == ("person", "bicycle", "car", "dog")
    assert dataset.image_paths == ("images/000001.jpg", "images/000002.png", "images/000003.jpg", "images/sub/000004.jpg")
    assert dataset.label_sets == (("person", "dog"), ("car",), (), ("bicycle",))
    assert dataset.path_of(3).is_file()


@pytest.mark.parametrize(
    "line, message",
    [
        ("4 0.5 0.5 0.1 0.1\n", r"000002\.txt line 3: class index 4 is out of range; classes\.txt has 4 classes"),
        ("-1 0.5 0.5 0.1 0.1\n", r"000002\.txt line 3: class index -1 is out of range"),
        ("dog 0.5 0.5 0.1 0.1\n", r"000002\.txt line 3: expected an integer class"),
        ("1 0.5 0.5\n", r"000002\.txt line 3: expected 'class cx cy w h', got '1 0.5 0.5'"),
    ],
)
def test_yolo_malformed(tmp_path, line, message):
    folder = make_yolo(tmp_path / "yolo", extra_label_line=line)
    with pytest.raises(ValueError, match=message):
        read_yolo(folder)


def test_yolo_missing_parts(tmp_path):
    folder = make_yolo(tmp_path / "yolo")
    write(folder / "classes.txt", "person\n\ncar\n")
    with pytest.raises(ValueError, match=r"classes\.txt line 2: empty class name"):
        read_yolo(folder)
    (folder / "classes.txt").unlink()
    with pytest.raises(ValueError, match="no classes.txt"):
        read_yolo(folder)


# -- VOC ----------------------------------------------------------------------------
def voc_xml(filename, *names):
    objects = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
    return f"<annotation><folder>VOC</folder><filename>{filename}</filename>{objects}</annotation>"


def make_voc(folder):
    write(folder / "Annotations" / "000002.xml", voc_xml("000002.jpg", "person", "dog", "person"))
    write(folder / "Annotations" / "000001.xml", voc_xml("000001.jpg", "car"))
    write(folder / "Annotations" / "000003.xml", voc_xml("000003.jpg"))
    (folder / "JPEGImages").mkdir(parents=True)
    return folder


def test_voc(tmp_path):
    dataset = read_voc(make_voc(tmp_path / "VOC2007"))
    assert dataset.format == "voc" and dataset.name == "VOC2007"
    assert dataset.vocabulary.names == ("car", "dog", "person")
    assert dataset.image_paths == ("JPEGImages/000001.jpg", "JPEGImages/000002.jpg", "JPEGImages/000003.jpg")
    assert dataset.label_sets == (("car",), ("dog", "person"), ())


def test_voc_xml_directly_in_folder(tmp_path):
    write(tmp_path / "a.xml", voc_xml("a.png", "zebra", "ant"))
    dataset = read_voc(tmp_path)
    assert dataset.image_paths == ("a.png",) and dataset.label_sets == (("ant", "zebra"),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation><filename>a.jpg</filename><object><name>cat</name></annotation>", r"bad\.xml line 1: not well-formed XML"),
        ("<annotation><object><name>cat</name></object></annotation>", r"bad\.xml: no <filename>"),
        ("<annotation><filename>a.jpg</filename><object><pose/></object></annotation>", r"bad\.xml: <object> number 1 has no <name>"),
        ("<svg/>", r"bad\.xml: the root element is <svg>"),
    ],
)
def test_voc_malformed(tmp_path, text, message):
    write(tmp_path / "Annotations" / "bad.xml", text)
    with pytest.raises(ValueError, match=message):
        read_voc(tmp_path)


def test_voc_entity_expansion_refused(tmp_path):
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefg", "bcdefgh"))
    write(tmp_path / "bomb.xml", f"<?xml version='1.0'?><!DOCTYPE annotation [{entities}]><annotation><filename>&h;</filename></annotation>")
    with pytest.raises(ValueError, match=r"bomb\.xml line \d+: not well-formed XML"):
        read_voc(tmp_path)


# -- detection and load_dataset -----------------------------------------------------
def test_detect_format_and_load(tmp_path):
    scenes = make_scenes(tmp_path / "scenes")
    yolo = make_yolo(tmp_path / "yolo")
    voc = make_voc(tmp_path / "voc")
    multihot = write(tmp_path / "miml" / "labels.csv", MULTIHOT)
    listed = write(tmp_path / "list.csv", "image,labels\na.png,x|y\n")
    coco = write(tmp_path / "instances_train.json", coco_json())
    cases = {
        scenes: "scenes",
        scenes / "labels.csv": "scenes",
        yolo: "yolo",
        yolo / "classes.txt": "yolo",
        voc: "voc",
        multihot.parent: "multihot-csv",
        multihot: "multihot-csv",
        listed: "list-csv",
        coco: "coco",
    }
    for path, expected in cases.items():
        assert detect_format(path) == expected, path
        dataset = load_dataset(path)
        assert isinstance(dataset, MultiLabelDataset) and dataset.format == expected
        assert load_dataset(path, format=expected).label_sets == dataset.label_sets
    # A scenes labels.csv read as a plain list CSV: same label sets, alphabetical vocabulary.
    as_list = load_dataset(scenes / "labels.csv", format="list-csv")
    assert as_list.label_sets == read_scenes(scenes).label_sets and as_list.vocabulary.names == ("cat", "dog face", "sun")
    assert set(FORMATS) == {"scenes", "list-csv", "multihot-csv", "coco", "yolo", "voc"}


def test_undetectable_and_unknown_format(tmp_path):
    write(tmp_path / "notes.txt", "hello")
    for path in (tmp_path / "notes.txt", tmp_path):
        with pytest.raises(ValueError, match=r"Cannot tell the data-set format .*--format.*multihot-csv.*voc"):
            load_dataset(path)
    with pytest.raises(ValueError, match=r"Unknown data-set format 'parquet'; use 'auto' or one of: scenes"):
        load_dataset(tmp_path, format="parquet")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="give the COCO annotation file"):
        load_dataset(tmp_path, format="coco")


# -- real data ----------------------------------------------------------------------
def cooccurrence(dataset):
    labels = dataset.labels.astype(np.int64)
    return (labels.T @ labels).toarray()


def test_miml_scenes(shared_data):
    dataset = load_dataset(shared_data / "miml_scenes")
    assert dataset.format == "multihot-csv" and len(dataset) == 2000
    assert dataset.vocabulary.names == ("desert", "mountains", "sea", "sunset", "trees")
    counts = cooccurrence(dataset)
    index = dataset.vocabulary.index
    assert counts[index("sea"), index("sunset")] == 176
    assert counts[index("mountains"), index("trees")] == 113
    summary = dataset.summary()
    assert abs(summary["mean_labels_per_image"] - 1.24) < 0.005
    assert abs(np.mean(np.diff(dataset.labels.indptr) > 1) - 0.229) < 0.001  # README rounds to 22.9%
    assert dataset.image_paths[0] == "images/1.jpg" and dataset.path_of(1999).is_file()


def test_coco128(shared_data):
    dataset = load_dataset(shared_data / "coco128")
    assert dataset.format == "yolo" and len(dataset) == 128 and dataset.num_labels == 80
    assert dataset.vocabulary[0] == "person"
    summary = dataset.summary()
    assert summary["num_labels"] - summary["num_unused_labels"] == 71
    assert abs(summary["mean_labels_per_image"] - 2.8) < 0.05
    assert all(dataset.path_of(i).is_file() for i in range(len(dataset)))
    # Brute-force reference: distinct class indices read straight from the label files.
    first = dataset.image_paths[0].split("/")[-1].rsplit(".", 1)[0]
    lines = (shared_data / "coco128" / "labels" / f"{first}.txt").read_text().split("\n")
    expected = sorted({int(line.split()[0]) for line in lines if line.strip()})
    assert dataset.vocabulary.indices(dataset.label_sets[0]).tolist() == expected
    assert isinstance(dataset.vocabulary, Vocabulary)


def test_bundled_coco_counts_load_and_equal_the_shared_copy():
    from workbench.data.bundled import FILES, coco2014_counts_path
    from workbench.method.cooccurrence import CooccurrenceCounts

    counts = CooccurrenceCounts.load_json(coco2014_counts_path())
    assert counts.n_images == 82081 and counts.num_labels == 80
    fork, knife = counts.vocabulary.index("fork"), counts.vocabulary.index("knife")
    assert counts.pair_counts[fork, knife] > 0
    assert "CC BY 4.0" in (FILES / "ATTRIBUTION.md").read_text()
    from tests.conftest import SHARED_DATA

    shared = SHARED_DATA / "cooccurrence" / "coco2014_train.json"
    if shared.is_file():
        assert coco2014_counts_path().read_bytes() == shared.read_bytes()
