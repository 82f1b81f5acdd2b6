"""Data sets: the built-in MNIST and Fashion-MNIST, user IDX folders, .npz and CSV files.

The eight official MNIST and Fashion-MNIST files ship inside the package
(``chainrule/data``, with their licences and ``SOURCES.md``), so training works offline.
Each file's MD5 is checked against the published value the first time a process reads
it.

Every loader returns ``(features, labels)`` with the labels as stored in the data; the
built-in labels are already the class indices 0..9. For a user's data set, whose labels
may be ``1..26`` or strings, ``load_dataset`` also returns the ``LabelMapping`` to class
indices, which a saved model keeps. ``stratified_split`` holds out a validation set with
every class in its training proportion.

Built-in arrays are decoded once per process and kept in a cache. ``load`` returns fresh
copies of them (47 MB for a training split), so callers may modify what they get, and no
caller can change what the next call returns.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from chainrule.backend import xp
from chainrule.idx import check_idx_pair, decode_idx, read_idx_pair
from chainrule.preprocessing import LabelMapping

__all__ = [
    "BUILTIN",
    "PUBLISHED_MD5",
    "SPLITS",
    "ChecksumError",
    "LoadedData",
    "canonical_name",
    "class_names",
    "clear_cache",
    "load",
    "load_csv",
    "load_dataset",
    "load_folder",
    "load_npz",
    "stratified_split",
    "verify_builtin",
]

BUILTIN = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")

# MD5 of each shipped .gz file, equal to the checksums torchvision's MNIST and FashionMNIST
# classes list for the official downloads. They are written here rather than read from the
# MD5SUMS files next to the data, because a check must not trust the files it checks.
PUBLISHED_MD5: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "mnist": MappingProxyType(
            {
                "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
            }
        ),
        "fashion_mnist": MappingProxyType(
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            }
        ),
    }
)

_DIRECTORIES = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}

# The official file names call the test split "t10k" (10,000 test images).
_FILE_SPLITS = {"train": "train", "test": "t10k"}

_CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
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
    ],
}

# One lock for both caches, so that threads loading the same split decode it once.
_cache_lock = threading.Lock()
_verified_files: set[str] = set()
_decoded: dict[tuple[str, str], tuple[xp.ndarray, xp.ndarray]] = {}


class ChecksumError(ValueError):
    """A shipped data file whose MD5 differs from the published value."""


@dataclass(frozen=True, eq=False)
class LoadedData:
    """A data set split with its labels mapped to class indices.

    Attributes
    ----------
    features : ndarray, shape (n, ...)
        As stored: uint8 ``(n, 28, 28)`` images for IDX data, ``(n, columns)`` for CSV.
    labels : ndarray of int64, shape (n,)
        Class indices ``0..K-1``.
    label_mapping : LabelMapping
        Converts between the data set's own labels and ``labels``.
    class_names : list of str
        A display name per class index.
    source : str
        The built-in name or the path the data came from.
    """

    features: xp.ndarray
    labels: xp.ndarray
    label_mapping: LabelMapping
    class_names: list[str]
    source: str

    @classmethod
    def from_arrays(
        cls,
        features: xp.ndarray,
        labels: xp.ndarray,
        *,
        label_mapping: LabelMapping | None = None,
        source: str = "<arrays>",
    ) -> LoadedData:
        """Encode ``labels`` with ``label_mapping``, or with a new mapping built from them.

        Pass the training split's mapping when loading its test split, so that both use
        the same class indices.
        """
        features = xp.asarray(features)
        labels = xp.asarray(labels)
        if features.ndim == 0 or features.shape[0] != labels.shape[0]:
            raise ValueError(
                f"features and labels must have the same number of samples, got features of "
                f"shape {features.shape} and labels of shape {labels.shape}"
            )
        if label_mapping is None:
            label_mapping = LabelMapping.from_labels(labels)
        encoded = label_mapping.encode(labels)
        names = [str(label) for label in label_mapping.classes.tolist()]
        return cls(features, encoded, label_mapping, names, source)


def canonical_name(name: str) -> str:
    """Return the built-in data set's canonical name: ``"MNIST"`` gives ``"mnist"``.

    Case is ignored, and ``-`` or a space may stand for ``_`` (``"Fashion-MNIST"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"a data set name must be a string, got {type(name).__name__}")
    canonical = name.strip().lower().replace("-", "_").replace(" ", "_")
    if canonical not in BUILTIN:
        raise ValueError(
            f"unknown data set {name!r}; the built-in data sets are {', '.join(BUILTIN)}. "
            "For your own data use load_folder (IDX files), load_npz or load_csv."
        )
    return canonical


def class_names(name: str) -> list[str]:
    """Return the display names of a built-in data set's classes, by class index.

    MNIST's are the digits ``"0"`` to ``"9"``; Fashion-MNIST's are ``"T-shirt/top"``,
    ``"Trouser"``, ``"Pullover"``, ``"Dress"``, ``"Coat"``, ``"Sandal"``, ``"Shirt"``,
    ``"Sneaker"``, ``"Bag"``, ``"Ankle boot"``.
    """
    return list(_CLASS_NAMES[canonical_name(name)])


def load(name: str, split: str = "train") -> tuple[xp.ndarray, xp.ndarray]:
    """Load a split of a built-in data set.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist"}
        Case is ignored; ``"fashion-mnist"`` is accepted too.
    split : {"train", "test"}
        60,000 training or 10,000 test samples.

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
        Pixel values 0 (background) to 255. A new array on every call.
    labels : ndarray of int64, shape (n,)
        Class indices 0..9; ``class_names(name)`` names them.

    Raises
    ------
    ChecksumError
        If a shipped file's MD5 differs from the published value.
    """
    canonical = canonical_name(name)
    _check_split(split)
    key = (canonical, split)
    with _cache_lock:
        if key not in _decoded:
            _decoded[key] = _decode_builtin(canonical, split)
        images, labels = _decoded[key]
    return images.copy(), labels.copy()


def verify_builtin(name: str | None = None) -> list[str]:
    """Check the MD5 of every shipped file of one built-in data set, or of all of them.

    Returns
    -------
    list of str
        The files checked. Files already checked in this process are not hashed again.

    Raises
    ------
    ChecksumError
        For the first file whose MD5 differs from the published value.
    """
    names = BUILTIN if name is None else (canonical_name(name),)
    checked = []
    with _cache_lock:
        for canonical in names:
            for file_name in PUBLISHED_MD5[canonical]:
                _read_builtin_file(canonical, file_name)
                checked.append(str(_data_root() / _DIRECTORIES[canonical] / file_name))
    return checked


def clear_cache() -> None:
    """Forget the decoded built-in arrays and the MD5 results, freeing their memory."""
    with _cache_lock:
        _decoded.clear()
        _verified_files.clear()


def _data_root() -> Any:
    """Return the package's data folder as an ``importlib.resources`` Traversable."""
    return importlib.resources.files("chainrule") / "data"


def _read_builtin_file(canonical: str, file_name: str) -> bytes:
    """Read a shipped file and check its MD5 (once per process and file)."""
    resource = _data_root() / _DIRECTORIES[canonical] / file_name
    data = resource.read_bytes()
    key = str(resource)
    if key not in _verified_files:
        expected = PUBLISHED_MD5[canonical][file_name]
        # usedforsecurity=False: this is an integrity check, and it keeps MD5 usable on
        # systems in FIPS mode.
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"MD5 checksum mismatch for {resource}: expected {expected} (the published "
                f"value), got {actual}. The file shipped with chainrule is damaged or was "
                "replaced; reinstall chainrule."
            )
        _verified_files.add(key)
    return data


def _decode_builtin(canonical: str, split: str) -> tuple[xp.ndarray, xp.ndarray]:
    prefix = _FILE_SPLITS[split]
    images_name = f"{prefix}-images-idx3-ubyte.gz"
    labels_name = f"{prefix}-labels-idx1-ubyte.gz"
    images = decode_idx(_read_builtin_file(canonical, images_name), source=images_name)
    labels = decode_idx(_read_builtin_file(canonical, labels_name), source=labels_name)
    images, labels = check_idx_pair(images, labels, images_name, labels_name)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


# ---------------------------------------------------------------------------------------
# A user's IDX folder


def load_folder(
    path: str | os.PathLike, split: str = "train", *, prefix: str = ""
) -> tuple[xp.ndarray, xp.ndarray]:
    """Load a split of an IDX data set laid out like MNIST, such as Kuzushiji-MNIST.

    The folder must hold, for the requested split, an image file and a label file named
    as in the official MNIST distribution, each gzip-compressed or not::

        train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
        t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]

    The dotted forms (``train-images.idx3-ubyte``) and ``test-`` in place of ``t10k-``
    are accepted too. When several candidates exist, the first in that order wins:
    dash before dot, uncompressed before ``.gz``, ``t10k`` before ``test``.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    split : {"train", "test"}
    prefix : str, default ""
        Text in front of every file name, for example ``"emnist-letters-"`` for EMNIST's
        ``emnist-letters-train-images-idx3-ubyte.gz``.

    Returns
    -------
    images : ndarray, shape (n, ...)
        As stored, usually uint8 ``(n, 28, 28)``.
    labels : ndarray of int64, shape (n,)
        As stored (EMNIST letters use 1..26); see ``load_dataset`` for class indices.

    Raises
    ------
    FileNotFoundError
        If the folder or a file is missing; the message lists the names looked for and
        the files found.
    ValueError
        If a file is not valid IDX, or the two files do not match (see ``read_idx_pair``).
    """
    _check_split(split)
    folder = Path(path)
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "not found"
        raise FileNotFoundError(
            f"data folder {str(folder)!r} {problem}; pass the folder that contains the IDX files"
        )

    found: dict[str, Path] = {}
    missing: list[str] = []
    for role in ("images", "labels"):
        candidates = _folder_candidates(split, role, prefix)
        existing = [folder / name for name in candidates if (folder / name).is_file()]
        if existing:
            found[role] = existing[0]
        else:
            missing.append(f"{role}: one of {', '.join(candidates)}")
    if missing:
        raise FileNotFoundError(_missing_files_message(folder, split, prefix, missing))
    return read_idx_pair(found["images"], found["labels"])


def _folder_candidates(split: str, role: str, prefix: str) -> list[str]:
    kind = "idx3" if role == "images" else "idx1"
    file_splits = ["train"] if split == "train" else ["t10k", "test"]
    names = []
    for file_split in file_splits:
        for separator in ("-", "."):
            stem = f"{prefix}{file_split}-{role}{separator}{kind}-ubyte"
            names += [stem, stem + ".gz"]
    return names


def _missing_files_message(folder: Path, split: str, prefix: str, missing: list[str]) -> str:
    present = sorted(entry.name for entry in folder.iterdir())
    listing = ", ".join(present[:20]) + (
        f", ... ({len(present) - 20} more)" if len(present) > 20 else ""
    )
    message = (
        f"data folder {str(folder)!r} lacks the {split} split's "
        + "; ".join(missing)
        + f". Found: {listing or 'nothing (the folder is empty)'}."
    )
    # Point at a prefix when the standard names appear after some leading text, as in
    # EMNIST's emnist-letters-train-images-idx3-ubyte.gz.
    standard = ("train-images-idx3-ubyte", "train-images.idx3-ubyte")
    for name in present:
        for stem in standard:
            start = name.find(stem)
            if start > 0 and not prefix:
                return message + f" To use {name}, pass prefix={name[:start]!r}."
    return message


# ---------------------------------------------------------------------------------------
# NumPy .npz files

# Pairs of (features, labels) keys recognised in a file that contains one split.
_NPZ_PAIRS = (
    ("x", "y"),
    ("X", "y"),
    ("images", "labels"),
    ("features", "labels"),
    ("data", "labels"),
    ("data", "target"),
)


def load_npz(
    path: str | os.PathLike,
    split: str | None = None,
    *,
    features_key: str | None = None,
    labels_key: str | None = None,
) -> tuple[xp.ndarray, xp.ndarray]:
    """Load features and labels from a NumPy ``.npz`` file.

    Without explicit keys, the arrays are found by name:

    - ``split=None``: a file with one split, keys ``x``/``y``, ``X``/``y``,
      ``images``/``labels``, ``features``/``labels``, ``data``/``labels`` or
      ``data``/``target``;
    - ``split="train"`` (or any name ``s``): keys ``x_s``/``y_s`` or ``X_s``/``y_s``, as
      in Keras's ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``).

    Parameters
    ----------
    path : str or os.PathLike
    split : str, optional
    features_key, labels_key : str, optional
        Names of the two arrays; given together, they override the search.

    Returns
    -------
    features : ndarray, shape (n, ...)
        As stored (Keras's MNIST: uint8 ``(n, 28, 28)``).
    labels : ndarray, shape (n,)
        As stored; a column ``(n, 1)`` is flattened.

    Raises
    ------
    ValueError
        If the keys are not found (the message lists the keys in the file), the file
        needs pickle (object arrays are refused for safety), or the shapes disagree.
    """
    path = Path(path)
    if (features_key is None) != (labels_key is None):
        raise ValueError("pass features_key and labels_key together, or neither")
    try:
        archive = xp.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read as a NumPy .npz file ({error})") from None
    if not hasattr(archive, "files"):
        raise ValueError(
            f"{path}: contains a single array, but a .npz file with features and labels is needed"
        )

    with archive:
        keys = list(archive.files)
        if features_key is None:
            features_key, labels_key = _find_npz_keys(keys, split, path)
        for key in (features_key, labels_key):
            if key not in keys:
                raise ValueError(f"{path}: no array named {key!r}; the file contains {keys}")
        try:
            features = archive[features_key]
            labels = archive[labels_key]
        except ValueError as error:
            # Object arrays need pickle, which can run code from the file.
            raise ValueError(
                f"{path}: cannot load {features_key!r} and {labels_key!r} without pickle "
                f"({error}); save them as numeric or string arrays"
            ) from None

    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    return _check_features_labels(features, labels, str(path))


def _find_npz_keys(keys: list[str], split: str | None, path: Path) -> tuple[str, str]:
    if split is None:
        for features_key, labels_key in _NPZ_PAIRS:
            if features_key in keys and labels_key in keys:
                return features_key, labels_key
        splits = sorted({key[2:] for key in keys if key[:2] in ("x_", "X_")})
        hint = f" It contains the splits {splits}; pass split=..." if splits else ""
        raise ValueError(
            f"{path}: cannot tell which arrays are features and labels; the file contains "
            f"{keys}.{hint} Otherwise name them with features_key and labels_key."
        )
    for features_key in (f"x_{split}", f"X_{split}"):
        if features_key in keys and f"y_{split}" in keys:
            return features_key, f"y_{split}"
    raise ValueError(
        f"{path}: no arrays x_{split} and y_{split}; the file contains {keys}. For a file "
        "with one split pass split=None, or name the arrays with features_key and labels_key."
    )


def _check_features_labels(
    features: xp.ndarray, labels: xp.ndarray, source: str
) -> tuple[xp.ndarray, xp.ndarray]:
    if features.ndim < 2:
        raise ValueError(
            f"{source}: features need samples first and at least 2 dimensions, got shape "
            f"{features.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{source}: labels must be 1-dimensional (one label per sample), got shape "
            f"{labels.shape}; for one-hot labels store labels.argmax(axis=1)"
        )
    if features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{source}: {features.shape[0]} samples of features but {labels.shape[0]} labels"
        )
    if features.dtype.kind not in "biuf":
        raise ValueError(f"{source}: features must be numbers, got dtype {features.dtype}")
    return features, labels


# ---------------------------------------------------------------------------------------
# CSV files


def load_csv(
    path: str | os.PathLike,
    *,
    label_column: int | str | None = 0,
    delimiter: str = ",",
    header: bool | None = None,
    features_dtype: Any = None,
) -> tuple[xp.ndarray, xp.ndarray | None]:
    """Load a CSV file with one sample per row, label first by default.

    This reads the layout of the common Kaggle copies of MNIST: an optional header row
    (``label,pixel0,...,pixel783``), then the label and the 784 pixel values of each image.

    Parameters
    ----------
    path : str or os.PathLike
    label_column : int, str or None, default 0
        Position (negative counts from the end) or header name of the label column;
        None for a file of features only, such as Kaggle's ``test.csv``.
    delimiter : str, default ","
    header : bool, optional
        Whether the first row contains column names. By default it does when one of its
        fields is not a number.
    features_dtype : dtype, optional
        The dtype to parse features as. By default features come back as uint8 when every
        value is an integer from 0 to 255, so that ``Preprocessor`` scales them like IDX
        images, and as float64 otherwise.

    Returns
    -------
    features : ndarray, shape (n, columns - 1)
    labels : ndarray of int64 or str, shape (n,), or None
        As stored, or None when ``label_column`` is None.

    Raises
    ------
    ValueError
        If the file is empty, rows differ in length, or a feature is not a number; the
        message names the file and, where NumPy reports it, the row.
    """
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as file:
        first_line = file.readline()
    if not first_line.strip():
        raise ValueError(f"{path}: the file is empty or its first line is blank; expected CSV rows")

    names = [field.strip().strip('"') for field in first_line.rstrip("\r\n").split(delimiter)]
    if header is None:
        header = not all(_is_number(name) for name in names)
    n_columns = len(names)
    label_index = _label_index(label_column, names if header else None, n_columns, path)
    feature_columns = [column for column in range(n_columns) if column != label_index]
    if not feature_columns:
        raise ValueError(f"{path}: no feature columns besides the label column")

    options = dict(
        delimiter=delimiter, skiprows=int(header), ndmin=2, encoding="utf-8-sig", quotechar='"'
    )
    try:
        with warnings.catch_warnings():
            # A header without rows is reported below as an error of its own.
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            features, labels = _parse_csv(
                path, options, label_index, feature_columns, features_dtype
            )
    except ValueError as error:
        raise ValueError(f"{path}: cannot parse as CSV of numbers ({error})") from None
    if features.shape[0] == 0:
        raise ValueError(f"{path}: the file has a header but no data rows")
    return features, labels


def _parse_csv(
    path: Path,
    options: dict,
    label_index: int | None,
    feature_columns: list[int],
    features_dtype: Any,
) -> tuple[xp.ndarray, xp.ndarray | None]:
    if features_dtype is None:
        # Fast path for pixel files: one pass parses every column as uint8 and fails on
        # the first value that is not an integer from 0 to 255 (a string label, 0.5, 300).
        try:
            table = xp.loadtxt(path, dtype=xp.uint8, **options)
        except ValueError:
            table = None
        if table is not None:
            if table.shape[0] == 0:
                return xp.empty((0, len(feature_columns)), dtype=xp.uint8), None
            if table.shape[1] != len(feature_columns) + (label_index is not None):
                raise ValueError(
                    f"the first row has {len(feature_columns) + (label_index is not None)} "
                    f"columns, but the data rows have {table.shape[1]}"
                )
            labels = None if label_index is None else table[:, label_index].astype(xp.int64)
            return xp.ascontiguousarray(table[:, feature_columns]), labels

    dtype = xp.float64 if features_dtype is None else features_dtype
    features = xp.loadtxt(path, dtype=dtype, usecols=feature_columns, **options)
    if features_dtype is None and _fits_uint8(features):
        features = features.astype(xp.uint8)
    if label_index is None:
        return features, None
    labels = xp.loadtxt(path, dtype=str, usecols=[label_index], **options)[:, 0]
    return features, _numeric_labels_if_possible(xp.char.strip(labels))


def _label_index(
    label_column: int | str | None, names: list[str] | None, n_columns: int, path: Path
) -> int | None:
    if label_column is None:
        return None
    if isinstance(label_column, str):
        if names is None:
            raise ValueError(
                f"{path}: label_column={label_column!r} needs a header row, but the file has none"
            )
        if label_column not in names:
            raise ValueError(
                f"{path}: no column named {label_column!r}; the header has {names[:10]}..."
            )
        return names.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise TypeError(f"label_column must be an int, a column name or None, got {label_column!r}")
    if not -n_columns <= label_column < n_columns:
        raise ValueError(f"{path}: label_column={label_column} is outside the {n_columns} columns")
    return label_column % n_columns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fits_uint8(values: xp.ndarray) -> bool:
    return bool(values.size) and bool(
        ((values >= 0) & (values <= 255) & (values == xp.round(values))).all()
    )


def _numeric_labels_if_possible(labels: xp.ndarray) -> xp.ndarray:
    """Convert string labels such as "3" or "3.0" to int64; keep other strings as they are."""
    try:
        numbers = labels.astype(xp.float64)
    except ValueError:
        return labels
    if xp.isfinite(numbers).all() and (numbers == xp.round(numbers)).all():
        return numbers.astype(xp.int64)
    return labels


# ---------------------------------------------------------------------------------------
# Any source, with its label mapping


def load_dataset(
    source: str | os.PathLike,
    split: str = "train",
    *,
    label_mapping: LabelMapping | None = None,
) -> LoadedData:
    """Load a built-in data set, an IDX folder, a .npz or a CSV file, with class indices.

    Parameters
    ----------
    source : str or os.PathLike
        A built-in name (``"mnist"``, ``"fashion_mnist"``), a folder for ``load_folder``,
        or a ``.npz`` or ``.csv`` file. An existing path wins over a built-in name.
    split : {"train", "test"}
        Used by built-ins, folders and .npz files with ``x_train``-style keys. A CSV file
        or a .npz file with one split is loaded whole, whatever the value of ``split``.
    label_mapping : LabelMapping, optional
        The training split's mapping, to encode another split with the same indices. By
        default a mapping is built from this split's labels (identity for built-ins).

    Returns
    -------
    LoadedData
    """
    path = Path(source)
    if (
        not path.exists()
        and isinstance(source, str)
        and source.strip().lower().replace("-", "_") in BUILTIN
    ):
        canonical = canonical_name(source)
        features, labels = load(canonical, split)
        names = _CLASS_NAMES[canonical]
        mapping = label_mapping or LabelMapping(xp.arange(len(names)))
        mapped_names = [names[label] for label in mapping.classes.tolist()]
        return LoadedData(features, mapping.encode(labels), mapping, mapped_names, canonical)

    if not path.exists():
        raise FileNotFoundError(
            f"data source {str(source)!r} is neither a built-in data set ({', '.join(BUILTIN)}) "
            "nor an existing folder or file"
        )
    if path.is_dir():
        features, labels = load_folder(path, split)
    elif path.suffix.lower() == ".npz":
        features, labels = load_npz(path, split if _npz_has_split(path, split) else None)
    elif path.suffix.lower() in (".csv", ".txt"):
        features, labels = load_csv(path)
    else:
        raise ValueError(
            f"cannot tell the format of {str(path)!r}; pass an IDX folder, a .npz or a .csv file"
        )
    return LoadedData.from_arrays(features, labels, label_mapping=label_mapping, source=str(path))


def _npz_has_split(path: Path, split: str) -> bool:
    try:
        with xp.load(path, allow_pickle=False) as archive:
            return f"y_{split}" in archive.files
    except (OSError, ValueError, AttributeError):
        # load_npz reads the file again and reports the problem in full.
        return False


# ---------------------------------------------------------------------------------------
# Stratified train/validation split


def stratified_split(
    labels: xp.ndarray,
    validation_fraction: float = 0.1,
    seed: int | xp.random.Generator = 0,
) -> tuple[xp.ndarray, xp.ndarray]:
    """Split sample indices into training and validation sets with equal class proportions.

    The validation set contains ``ceil(validation_fraction * n)`` samples. Each class gets
    its proportional share, rounded by the largest-remainder method (ties broken by the
    seed), but at least 1 sample in each set, so every class is seen by both.

    Parameters
    ----------
    labels : array_like, shape (n,)
        Integers or strings.
    validation_fraction : float, default 0.1
        Between 0 and 1, exclusive.
    seed : int or numpy.random.Generator, default 0
        The same seed and labels give the same split.

    Returns
    -------
    train_indices, validation_indices : ndarray of int64
        Sorted, disjoint, together ``0..n-1``.

    Raises
    ------
    ValueError
        If a class has fewer than 2 members, or the validation or training set would be
        too small to hold every class.
    """
    labels = xp.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-dimensional, got shape {labels.shape}")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, int | float):
        raise TypeError(f"validation_fraction must be a number, got {validation_fraction!r}")
    if not 0 < validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}"
        )
    rng = _generator(seed)

    classes, class_of_sample, counts = xp.unique(labels, return_inverse=True, return_counts=True)
    too_small = counts < 2
    if too_small.any():
        listing = ", ".join(
            f"{label!r} ({count})"
            for label, count in zip(
                classes[too_small].tolist(), counts[too_small].tolist(), strict=True
            )
        )
        raise ValueError(
            f"cannot stratify: every class needs at least 2 members (1 for training, 1 for "
            f"validation), but these classes have fewer: {listing}. Add samples or remove "
            "those classes."
        )

    n_samples = labels.shape[0]
    n_classes = classes.shape[0]
    # Round first to absorb binary noise: 0.07 * 100 is 7.000000000000001, which ceil
    # would turn into 8.
    n_validation = math.ceil(round(validation_fraction * n_samples, 6))
    if n_validation < n_classes:
        raise ValueError(
            f"a validation set of {n_validation} samples ({validation_fraction} of {n_samples}) "
            f"cannot hold all {n_classes} classes; raise validation_fraction to at least "
            f"{n_classes / n_samples:.3g}"
        )
    if n_samples - n_validation < n_classes:
        raise ValueError(
            f"a training set of {n_samples - n_validation} samples cannot hold all {n_classes} "
            f"classes; lower validation_fraction to at most {1 - n_classes / n_samples:.3g}"
        )

    per_class = _allocate(counts, n_validation, rng)
    train_parts, validation_parts = [], []
    members_by_class = xp.split(xp.argsort(class_of_sample, kind="stable"), xp.cumsum(counts)[:-1])
    for members, n_class_validation in zip(members_by_class, per_class, strict=True):
        shuffled = rng.permutation(members)
        validation_parts.append(shuffled[:n_class_validation])
        train_parts.append(shuffled[n_class_validation:])
    train_indices = xp.sort(xp.concatenate(train_parts)).astype(xp.int64)
    validation_indices = xp.sort(xp.concatenate(validation_parts)).astype(xp.int64)
    return train_indices, validation_indices


def _generator(seed: int | xp.random.Generator) -> xp.random.Generator:
    if isinstance(seed, xp.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | xp.integer) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer or a numpy.random.Generator, got {seed!r}"
        )
    return xp.random.default_rng(int(seed))


def _allocate(counts: xp.ndarray, total: int, rng: xp.random.Generator) -> xp.ndarray:
    """Return per-class validation sizes summing to ``total``, each in ``1..count-1``.

    The caller guarantees ``len(counts) <= total <= sum(counts) - len(counts)``, so such
    sizes exist.
    """
    quotas = counts * (total / counts.sum())
    sizes = xp.clip(xp.floor(quotas).astype(xp.int64), 1, counts - 1)
    remainders = quotas - xp.floor(quotas)
    # Random tie-breaking: order classes by remainder, ties in the seeded random order.
    tie_break = rng.permutation(counts.shape[0])

    while sizes.sum() < total:
        room = sizes < counts - 1
        order = xp.lexsort((tie_break, -remainders))
        for index in order:
            if room[index] and sizes.sum() < total:
                sizes[index] += 1
        remainders = xp.zeros_like(remainders)
    while sizes.sum() > total:
        # The minimum of 1 per class overshot: take back from the classes that received
        # the most beyond their quota.
        excess = sizes - quotas
        order = xp.lexsort((tie_break, -excess))
        for index in order:
            if sizes[index] > 1 and sizes.sum() > total:
                sizes[index] -= 1
    return sizes
