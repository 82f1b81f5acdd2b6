"""Tests for the built-in data sets, user data loaders and the stratified split.

Expected counts and first labels were read from the shipped label files with a few lines
of gzip and bytes indexing, independently of chainrule. The MD5 values are the published
ones, which torchvision's MNIST and FashionMNIST classes also list.
"""

import gzip
import hashlib
import importlib.resources
import math
import shutil

import numpy as np
import pytest

from chainrule import datasets
from chainrule.idx import write_idx

PUBLISHED_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

FIRST_LABELS = {
    ("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    ("fashion_mnist", "train"): [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
    ("fashion_mnist", "test"): [9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
}

SIZES = {"train": 60_000, "test": 10_000}


def data_folder():
    return importlib.resources.files("chainrule") / "data"


# Built-in data sets


@pytest.mark.parametrize("name", datasets.BUILTIN)
@pytest.mark.parametrize("split", datasets.SPLITS)
def test_load_shapes_and_dtypes(name, split):
    images, labels = datasets.load(name, split)

    assert images.shape == (SIZES[split], 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (SIZES[split],)
    assert labels.dtype == np.int64


@pytest.mark.parametrize("name, split", FIRST_LABELS)
def test_load_first_labels(name, split):
    _, labels = datasets.load(name, split)

    assert labels[:10].tolist() == FIRST_LABELS[name, split]


@pytest.mark.parametrize(
    "split, counts", [("train", MNIST_TRAIN_COUNTS), ("test", MNIST_TEST_COUNTS)]
)
def test_mnist_class_counts(split, counts):
    _, labels = datasets.load("mnist", split)

    assert np.bincount(labels, minlength=10).tolist() == counts


@pytest.mark.parametrize("split, per_class", [("train", 6000), ("test", 1000)])
def test_fashion_mnist_class_counts(split, per_class):
    _, labels = datasets.load("fashion_mnist", split)

    assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_load_images_equal_raw_bytes():
    # Independent decoding: skip the 16-byte header (magic, count, rows, columns).
    content = gzip.decompress((data_folder() / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    expected = np.frombuffer(content[16:], dtype=np.uint8).reshape(10_000, 28, 28)

    images, _ = datasets.load("mnist", "test")

    np.testing.assert_array_equal(images, expected)


@pytest.mark.parametrize(
    "alias", ["Fashion-MNIST", "fashion-mnist", "FASHION_MNIST", " fashion mnist "]
)
def test_load_name_aliases(alias):
    assert datasets.canonical_name(alias) == "fashion_mnist"


def test_load_alias_same_data():
    _, labels = datasets.load("Fashion-MNIST", "test")

    assert labels[:10].tolist() == FIRST_LABELS["fashion_mnist", "test"]


def test_load_unknown_name():
    with pytest.raises(ValueError, match="mnist, fashion_mnist.*load_folder"):
        datasets.load("cifar10")


def test_load_unknown_split():
    with pytest.raises(ValueError, match="split must be one of train, test, got 'validation'"):
        datasets.load("mnist", "validation")


def test_load_returns_independent_copies():
    images, labels = datasets.load("mnist", "test")
    images[:] = 0
    labels[:] = 99

    images_again, labels_again = datasets.load("mnist", "test")

    assert images_again.max() == 255
    assert labels_again[:10].tolist() == FIRST_LABELS["mnist", "test"]
    assert images.flags.writeable


def test_class_names_mnist():
    assert datasets.class_names("mnist") == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


def test_class_names_fashion_mnist():
    assert datasets.class_names("fashion-mnist") == [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


# MD5 checks


@pytest.mark.parametrize("directory", PUBLISHED_MD5)
def test_shipped_files_match_published_md5(directory):
    for file_name, expected in PUBLISHED_MD5[directory].items():
        content = (data_folder() / directory / file_name).read_bytes()
        assert hashlib.md5(content).hexdigest() == expected, file_name


@pytest.mark.parametrize("directory", PUBLISHED_MD5)
def test_md5sums_files_agree(directory):
    lines = (data_folder() / directory / "MD5SUMS").read_text().split("\n")
    listed = dict(reversed(line.split()) for line in lines if line.strip())

    assert listed == PUBLISHED_MD5[directory]


def test_hard_coded_md5_published():
    assert datasets.PUBLISHED_MD5["mnist"] == PUBLISHED_MD5["mnist"]
    assert datasets.PUBLISHED_MD5["fashion_mnist"] == PUBLISHED_MD5["fashion-mnist"]


def test_verify_builtin_checks_all_files():
    datasets.clear_cache()

    checked = datasets.verify_builtin()

    assert len(checked) == 8
    assert {path.rsplit("/", 2)[-2] for path in checked} == {"mnist", "fashion-mnist"}


@pytest.fixture
def damaged_copy(tmp_path, monkeypatch):
    """A copy of MNIST's test files with one byte of the label file changed."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for file_name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(data_folder() / "mnist" / file_name, folder / file_name)
    labels_path = folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(labels_path.read_bytes())
    content[100] ^= 0xFF
    labels_path.write_bytes(bytes(content))

    monkeypatch.setattr(datasets, "_data_root", lambda: tmp_path / "data")
    datasets.clear_cache()
    yield labels_path
    datasets.clear_cache()


def test_damaged_copy_fails_md5(damaged_copy):
    actual = hashlib.md5(damaged_copy.read_bytes()).hexdigest()

    with pytest.raises(datasets.ChecksumError) as error:
        datasets.load("mnist", "test")

    message = str(error.value)
    assert str(damaged_copy) in message
    assert PUBLISHED_MD5["mnist"]["t10k-labels-idx1-ubyte.gz"] in message
    assert actual in message


def test_checksum_error_is_value_error():
    assert issubclass(datasets.ChecksumError, ValueError)


def test_md5_computed_once_per_file(monkeypatch):
    datasets.clear_cache()
    calls = []
    original_md5 = hashlib.md5

    def counting_md5(*args, **kwargs):
        calls.append(1)
        return original_md5(*args, **kwargs)

    monkeypatch.setattr(datasets.hashlib, "md5", counting_md5)
    datasets.verify_builtin("mnist")
    datasets.load("mnist", "test")
    datasets.load("mnist", "test")

    assert len(calls) == 4


# A user's IDX folder


def write_folder(folder, names, images, labels):
    """Write images and labels under the given (images, labels) file names."""
    folder.mkdir(exist_ok=True)
    write_idx(folder / names[0], images)
    write_idx(folder / names[1], labels)


def small_set(n, offset=0):
    images = (np.arange(n * 4).reshape(n, 2, 2) + offset).astype(np.uint8)
    labels = (np.arange(n) % 3 + 1).astype(np.uint8)
    return images, labels


def test_folder_both_splits(tmp_path):
    train_images, train_labels = small_set(6)
    test_images, test_labels = small_set(3, offset=100)
    write_folder(
        tmp_path,
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        train_images,
        train_labels,
    )
    write_folder(
        tmp_path, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), test_images, test_labels
    )

    images, labels = datasets.load_folder(tmp_path, "train")
    images_test, labels_test = datasets.load_folder(tmp_path, "test")

    np.testing.assert_array_equal(images, train_images)
    np.testing.assert_array_equal(labels, train_labels)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images_test, test_images)
    np.testing.assert_array_equal(labels_test, test_labels)


def test_folder_dotted_and_test_names(tmp_path):
    images, labels = small_set(3)
    write_folder(tmp_path, ("test-images.idx3-ubyte", "test-labels.idx1-ubyte"), images, labels)

    loaded_images, _ = datasets.load_folder(tmp_path, "test")

    np.testing.assert_array_equal(loaded_images, images)


def test_folder_prefix(tmp_path):
    images, labels = small_set(4)
    names = (
        "emnist-letters-train-images-idx3-ubyte.gz",
        "emnist-letters-train-labels-idx1-ubyte.gz",
    )
    write_folder(tmp_path, names, images, labels)

    _, loaded_labels = datasets.load_folder(tmp_path, prefix="emnist-letters-")

    np.testing.assert_array_equal(loaded_labels, labels)


def test_folder_prefers_uncompressed(tmp_path):
    images, labels = small_set(3)
    other_images, _ = small_set(3, offset=50)
    write_folder(tmp_path, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), images, labels)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", other_images)

    loaded_images, _ = datasets.load_folder(tmp_path)

    np.testing.assert_array_equal(loaded_images, images)


def test_folder_missing_labels_listed(tmp_path):
    images, _ = small_set(3)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    (tmp_path / "notes.txt").write_text("")

    with pytest.raises(FileNotFoundError) as error:
        datasets.load_folder(tmp_path)

    message = str(error.value)
    assert "labels: one of train-labels-idx1-ubyte, train-labels-idx1-ubyte.gz" in message
    assert "Found: notes.txt, train-images-idx3-ubyte.gz" in message
    assert "images: one of" not in message


def test_folder_suggests_prefix(tmp_path):
    images, labels = small_set(3)
    names = ("emnist-digits-train-images-idx3-ubyte.gz", "emnist-digits-train-labels-idx1-ubyte.gz")
    write_folder(tmp_path, names, images, labels)

    with pytest.raises(FileNotFoundError, match="pass prefix='emnist-digits-'"):
        datasets.load_folder(tmp_path)


def test_folder_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder is empty"):
        datasets.load_folder(tmp_path)


def test_folder_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        datasets.load_folder(tmp_path / "kmnist")


def test_folder_mismatched_counts(tmp_path):
    images, _ = small_set(3)
    _, labels = small_set(4)
    write_folder(tmp_path, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), images, labels)

    with pytest.raises(ValueError, match=r"number of images \(3.*number of labels \(4"):
        datasets.load_folder(tmp_path)


# .npz files


def test_npz_keras_layout(tmp_path):
    train_images, train_labels = small_set(5)
    test_images, test_labels = small_set(2, offset=9)
    path = tmp_path / "mnist.npz"
    np.savez(
        path, x_train=train_images, y_train=train_labels, x_test=test_images, y_test=test_labels
    )

    images, labels = datasets.load_npz(path, "test")

    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, test_images)
    np.testing.assert_array_equal(labels, test_labels)


def test_npz_single_split(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array([[0], [1], [0]]))

    features, labels = datasets.load_npz(path)

    assert features.shape == (3, 2)
    np.testing.assert_array_equal(labels, [0, 1, 0])


def test_npz_explicit_keys(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, pixels=np.zeros((2, 4)), classes=np.array(["a", "b"]))

    _, labels = datasets.load_npz(path, features_key="pixels", labels_key="classes")

    assert labels.tolist() == ["a", "b"]


def test_npz_unknown_keys_listed(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, pixels=np.zeros((2, 4)), classes=np.array([0, 1]))

    with pytest.raises(ValueError, match=r"contains \['pixels', 'classes'\].*features_key"):
        datasets.load_npz(path)


def test_npz_split_hint(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((2, 4)), y_train=np.array([0, 1]))

    with pytest.raises(ValueError, match=r"splits \['train'\]; pass split="):
        datasets.load_npz(path)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((2, 1)), y=np.array([1, "a"], dtype=object))

    with pytest.raises(ValueError, match="without pickle"):
        datasets.load_npz(path)


def test_npz_count_mismatch(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((3, 4)), y=np.array([0, 1]))

    with pytest.raises(ValueError, match="3 samples of features but 2 labels"):
        datasets.load_npz(path)


def test_npz_not_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("hello")

    with pytest.raises(ValueError, match="cannot read as a NumPy .npz file"):
        datasets.load_npz(path)


# CSV files


def test_csv_kaggle_layout(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label,pixel0,pixel1,pixel2\n5,0,128,255\n0,1,2,3\n")

    features, labels = datasets.load_csv(path)

    assert features.dtype == np.uint8
    np.testing.assert_array_equal(features, [[0, 128, 255], [1, 2, 3]])
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [5, 0])


def test_csv_without_header(tmp_path):
    path = tmp_path / "mnist_train.csv"
    path.write_text("7,0,255\n2,10,20\n")

    features, labels = datasets.load_csv(path)

    np.testing.assert_array_equal(features, [[0, 255], [10, 20]])
    np.testing.assert_array_equal(labels, [7, 2])


def test_csv_string_labels(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text('kind,a,b\n"cat",0,255\ndog,10,20\n')

    features, labels = datasets.load_csv(path)

    assert features.dtype == np.uint8
    assert labels.tolist() == ["cat", "dog"]


def test_csv_float_features(tmp_path):
    path = tmp_path / "features.csv"
    path.write_text("1,0.5,-2\n0,300,4\n")

    features, labels = datasets.load_csv(path)

    assert features.dtype == np.float64
    np.testing.assert_array_equal(features, [[0.5, -2.0], [300.0, 4.0]])
    np.testing.assert_array_equal(labels, [1, 0])


def test_csv_large_labels(tmp_path):
    # A label above 255 fails the uint8 fast path; the pixels still come back as uint8.
    path = tmp_path / "labels.csv"
    path.write_text("1000,0,255\n2,1,1\n")

    features, labels = datasets.load_csv(path)

    assert features.dtype == np.uint8
    np.testing.assert_array_equal(labels, [1000, 2])


def test_csv_label_column_by_name(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("p0,p1,target\n1,2,9\n3,4,8\n")

    features, labels = datasets.load_csv(path, label_column="target")

    np.testing.assert_array_equal(features, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(labels, [9, 8])


def test_csv_last_column_label(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2,9\n3,4,8\n")

    _, labels = datasets.load_csv(path, label_column=-1)

    np.testing.assert_array_equal(labels, [9, 8])


def test_csv_features_only(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("pixel0,pixel1\n0,255\n")

    features, labels = datasets.load_csv(path, label_column=None)

    assert labels is None
    np.testing.assert_array_equal(features, [[0, 255]])


def test_csv_explicit_dtype(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,0,255\n")

    features, _ = datasets.load_csv(path, features_dtype="float32")

    assert features.dtype == np.float32


def test_csv_ragged_rows(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,0,255\n2,3\n")

    with pytest.raises(ValueError, match="data.csv: cannot parse"):
        datasets.load_csv(path)


def test_csv_header_longer_than_rows(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("label,p0,p1,p2\n1,0,255\n")

    with pytest.raises(ValueError, match="4 columns, but the data rows have 3"):
        datasets.load_csv(path)


def test_csv_empty_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("")

    with pytest.raises(ValueError, match="empty"):
        datasets.load_csv(path)


def test_csv_header_only(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("label,p0\n")

    with pytest.raises(ValueError, match="no data rows"):
        datasets.load_csv(path)


def test_csv_unknown_label_name(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("label,p0\n1,2\n")

    with pytest.raises(ValueError, match="no column named 'class'"):
        datasets.load_csv(path, label_column="class")


# load_dataset and label mappings


def test_dataset_emnist_letters_mapping(tmp_path):
    # Labels 1..26 as in EMNIST letters, two samples each.
    labels = np.repeat(np.arange(1, 27), 2).astype(np.uint8)
    images = np.zeros((52, 2, 2), dtype=np.uint8)
    write_folder(tmp_path, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), images, labels)
    write_folder(
        tmp_path,
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        images[:3],
        np.array([26, 1, 2], np.uint8),
    )

    train = datasets.load_dataset(tmp_path, "train")
    test = datasets.load_dataset(tmp_path, "test", label_mapping=train.label_mapping)

    np.testing.assert_array_equal(train.label_mapping.classes, np.arange(1, 27))
    np.testing.assert_array_equal(train.labels[:4], [0, 0, 1, 1])
    np.testing.assert_array_equal(test.labels, [25, 0, 1])
    assert train.class_names[:2] == ["1", "2"]


def test_dataset_unknown_test_label(tmp_path):
    images = np.zeros((2, 2, 2), dtype=np.uint8)
    write_folder(
        tmp_path,
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        images,
        np.array([1, 2], np.uint8),
    )
    write_folder(
        tmp_path,
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        images,
        np.array([1, 27], np.uint8),
    )
    mapping = datasets.load_dataset(tmp_path, "train").label_mapping

    with pytest.raises(ValueError, match=r"unknown labels \[27\]"):
        datasets.load_dataset(tmp_path, "test", label_mapping=mapping)


def test_dataset_builtin_identity_mapping():
    data = datasets.load_dataset("Fashion-MNIST", "test")

    np.testing.assert_array_equal(data.label_mapping.classes, np.arange(10))
    assert data.class_names[9] == "Ankle boot"
    assert data.labels[:10].tolist() == FIRST_LABELS["fashion_mnist", "test"]
    assert data.source == "fashion_mnist"


def test_dataset_csv_string_labels(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text("kind,a\ndog,1\ncat,2\ndog,3\n")

    data = datasets.load_dataset(path)

    assert data.labels.tolist() == [1, 0, 1]
    assert data.class_names == ["cat", "dog"]


def test_dataset_npz_split_keys(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((2, 3)), y_train=[4, 5], x_test=np.zeros((1, 3)), y_test=[5])

    train = datasets.load_dataset(path, "train")
    test = datasets.load_dataset(path, "test", label_mapping=train.label_mapping)

    assert test.labels.tolist() == [1]


def test_dataset_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a built-in data set"):
        datasets.load_dataset(tmp_path / "nothing.csv")


# Stratified split


def test_split_bug_case_balanced():
    # 20 samples, 10 per class, validation_fraction 0.2: 4 validation samples, 2 per class.
    labels = np.array([0] * 10 + [1] * 10)

    train, validation = datasets.stratified_split(labels, validation_fraction=0.2, seed=0)

    assert validation.shape == (4,)
    assert np.bincount(labels[validation]).tolist() == [2, 2]
    assert np.bincount(labels[train]).tolist() == [8, 8]


def test_split_bug_case_reproducible():
    labels = np.array([0] * 10 + [1] * 10)

    first = datasets.stratified_split(labels, validation_fraction=0.2, seed=0)
    second = datasets.stratified_split(labels, validation_fraction=0.2, seed=0)

    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_split_bug_case_single_member_class():
    labels = [0, 0, 0, 0, 1]

    with pytest.raises(ValueError, match=r"at least 2 members.*1 \(1\)"):
        datasets.stratified_split(labels, validation_fraction=0.2, seed=0)


def test_split_seed_changes_split():
    labels = np.repeat(np.arange(4), 25)

    _, first = datasets.stratified_split(labels, seed=0)
    _, second = datasets.stratified_split(labels, seed=1)

    assert first.tolist() != second.tolist()


def test_split_generator_seed():
    labels = np.repeat(np.arange(4), 25)

    _, from_int = datasets.stratified_split(labels, seed=5)
    _, from_generator = datasets.stratified_split(labels, seed=np.random.default_rng(5))

    np.testing.assert_array_equal(from_int, from_generator)


def test_split_exact_proportions():
    # 600 / 300 / 100 samples: 10 % is exactly 60 / 30 / 10.
    labels = np.repeat([0, 1, 2], [600, 300, 100])

    _, validation = datasets.stratified_split(labels, validation_fraction=0.1, seed=3)

    assert np.bincount(labels[validation]).tolist() == [60, 30, 10]


def test_split_indices_partition():
    labels = np.repeat([0, 1, 2], [7, 11, 13])

    train, validation = datasets.stratified_split(labels, validation_fraction=0.3, seed=2)

    assert train.dtype == np.int64
    assert validation.dtype == np.int64
    assert np.all(np.diff(train) > 0)
    assert np.all(np.diff(validation) > 0)
    assert sorted(train.tolist() + validation.tolist()) == list(range(31))
    # ceil(0.3 * 31) = ceil(9.3) = 10
    assert validation.shape == (10,)


def test_split_mnist_proportions():
    _, labels = datasets.load("mnist", "train")

    _, validation = datasets.stratified_split(labels, validation_fraction=0.1, seed=0)

    assert validation.shape == (6000,)
    counts = np.bincount(labels[validation]).tolist()
    for digit, (count, total) in enumerate(zip(counts, MNIST_TRAIN_COUNTS, strict=True)):
        assert count in (math.floor(total / 10), math.ceil(total / 10)), digit


def test_split_rare_class_kept_in_both():
    # Class 1 has 3 of 1000 samples: 10 % would give it 0.3 validation samples.
    labels = np.array([0] * 997 + [1] * 3)

    train, validation = datasets.stratified_split(labels, validation_fraction=0.1, seed=0)

    assert validation.shape == (100,)
    assert np.bincount(labels[validation]).tolist() == [99, 1]
    assert np.bincount(labels[train]).tolist() == [898, 2]


def test_split_string_labels():
    labels = np.array(["cat", "dog"] * 10)

    _, validation = datasets.stratified_split(labels, validation_fraction=0.2)

    assert sorted(labels[validation].tolist()) == ["cat", "cat", "dog", "dog"]


def test_split_validation_too_small():
    labels = np.repeat(np.arange(10), 2)

    # 10 % of 20 samples is 2, too few for 10 classes.
    with pytest.raises(
        ValueError, match="cannot hold all 10 classes; raise validation_fraction to at least 0.5"
    ):
        datasets.stratified_split(labels, validation_fraction=0.1)


def test_split_training_too_small():
    labels = np.repeat(np.arange(2), 3)

    # ceil(0.7 * 6) = ceil(4.2) = 5 validation samples leave 1 for training.
    with pytest.raises(ValueError, match="training set of 1 samples cannot hold all 2 classes"):
        datasets.stratified_split(labels, validation_fraction=0.7)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_split_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        datasets.stratified_split([0, 0, 1, 1], validation_fraction=fraction)


@pytest.mark.parametrize("seed", [None, -1, 1.5])
def test_split_invalid_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        datasets.stratified_split([0, 0, 1, 1], validation_fraction=0.5, seed=seed)
