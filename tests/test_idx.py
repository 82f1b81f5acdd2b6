"""Tests for IDX reading and writing, against an independent encoder written with struct."""

import gzip
import io
import os
import struct

import numpy as np
import pytest

from chainrule.idx import read_idx, read_idx_pair, write_idx

# IDX element type code for each dtype: 0x08 unsigned byte, 0x09 signed byte, 0x0B short,
# 0x0C int, 0x0D float, 0x0E double.
TYPE_CODES = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}
SHAPES = [(5,), (2, 3), (2, 3, 4), (2, 1, 3, 2)]

# The image and label files of the public bug case on IDX loaders, byte by byte.
VALID_IMAGES = bytes.fromhex("00000803 00000002 00000002 00000002 00ff8001 02030405")
VALID_LABELS = bytes.fromhex("00000801 00000003 070009")


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX with struct, independently of chainrule."""
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[array.dtype.name], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def decode_idx_independently(data: bytes) -> np.ndarray:
    """Decode IDX bytes with struct, independently of chainrule."""
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = {code: np.dtype(name) for name, code in TYPE_CODES.items()}[type_code]
    return np.frombuffer(data, dtype=dtype.newbyteorder(">"), offset=4 + 4 * ndim).reshape(shape)


def sample_array(dtype_name: str, shape: tuple) -> np.ndarray:
    """Values that cover each type's range: extremes, negatives, fractions."""
    rng = np.random.default_rng(7)
    dtype = np.dtype(dtype_name)
    size = int(np.prod(shape))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=size, endpoint=True)
        values[:2] = [info.min, info.max][: min(2, size)]
    else:
        values = rng.normal(scale=1e3, size=size)
        values[:2] = [-0.0, np.finfo(dtype).max][: min(2, size)]
    return values.astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype_name", TYPE_CODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: f"{len(shape)}d")
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
def test_read_idx_independent_files(tmp_path, dtype_name, shape, compressed):
    expected = sample_array(dtype_name, shape)
    content = encode_idx(expected)
    if compressed:
        content = gzip.compress(content)
    path = tmp_path / "array.idx"
    path.write_bytes(content)

    array = read_idx(path)

    assert array.dtype == np.dtype(dtype_name)
    assert array.shape == shape
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize("dtype_name", TYPE_CODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: f"{len(shape)}d")
@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gzip"])
def test_write_idx_round_trip(tmp_path, dtype_name, shape, suffix):
    expected = sample_array(dtype_name, shape)
    path = tmp_path / f"array-idx{len(shape)}-ubyte{suffix}"

    write_idx(path, expected)
    content = path.read_bytes()
    raw = gzip.decompress(content) if suffix else content

    assert (content[:2] == b"\x1f\x8b") == bool(suffix)
    np.testing.assert_array_equal(decode_idx_independently(raw), expected)
    np.testing.assert_array_equal(read_idx(path), expected)


def test_write_idx_big_endian_input(tmp_path):
    expected = np.array([[1, -2], [300, -40000]], dtype=">i4")
    path = tmp_path / "big-endian.idx"

    write_idx(path, expected)

    assert path.read_bytes() == encode_idx(expected.astype(np.int32))


def test_write_idx_compress_overrides_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw_path = tmp_path / "named.gz"
    compressed_path = tmp_path / "named.idx"

    write_idx(raw_path, array, compress=False)
    write_idx(compressed_path, array, compress=True)

    assert raw_path.read_bytes() == encode_idx(array)
    assert gzip.decompress(compressed_path.read_bytes()) == encode_idx(array)


def test_write_idx_empty_dimension(tmp_path):
    array = np.zeros((0, 28, 28), dtype=np.uint8)
    path = tmp_path / "empty-idx3-ubyte"

    write_idx(path, array)
    result = read_idx(path)

    assert result.shape == (0, 28, 28)
    assert path.read_bytes() == encode_idx(array)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float16, np.uint16, np.complex64])
def test_write_idx_rejects_dtype(tmp_path, dtype):
    with pytest.raises(TypeError, match="astype"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=dtype))


def test_write_idx_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(VALID_LABELS)

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(5, dtype=np.uint8))

    assert path.read_bytes() == VALID_LABELS
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [path.name]


def test_read_idx_result_writable_native(tmp_path):
    path = tmp_path / "doubles.idx"
    path.write_bytes(encode_idx(np.array([1.5, -2.25])))

    array = read_idx(path)

    assert array.dtype.isnative
    assert array.flags.writeable
    assert array.flags.c_contiguous


def test_read_idx_gzip_detected_by_content(tmp_path):
    compressed_without_suffix = tmp_path / "images-idx3-ubyte"
    raw_with_suffix = tmp_path / "images-idx3-ubyte.gz"
    compressed_without_suffix.write_bytes(gzip.compress(VALID_IMAGES))
    raw_with_suffix.write_bytes(VALID_IMAGES)

    np.testing.assert_array_equal(read_idx(compressed_without_suffix), read_idx(raw_with_suffix))


# The public bug case on IDX loaders: bad magic numbers, gzip or HTML content, truncation.


def test_bug_case_valid_images(tmp_path):
    path = tmp_path / "images.idx"
    path.write_bytes(VALID_IMAGES)

    images = read_idx(path)

    assert images.dtype == np.uint8
    assert images.shape == (2, 2, 2)
    np.testing.assert_array_equal(images, [[[0, 255], [128, 1]], [[2, 3], [4, 5]]])


def test_bug_case_valid_labels(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(VALID_LABELS)

    labels = read_idx(path)

    assert labels.shape == (3,)
    np.testing.assert_array_equal(labels, [7, 0, 9])


def gzip_with_file_name(content: bytes) -> bytes:
    """Compress like the gzip command line, which stores the file name (FNAME flag)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="images.idx", mode="wb", fileobj=buffer, mtime=0) as file:
        file.write(content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "compress", [gzip.compress, gzip_with_file_name], ids=["no-name", "file-name"]
)
def test_bug_case_gzip_images(tmp_path, compress):
    content = compress(VALID_IMAGES)
    # Read as a big-endian int, these headers are the puzzling magic numbers of the bug
    # reports: 0x1F8B0800 = 529205248 without a stored name, 0x1F8B0808 = 529205256 with.
    expected_magic = 529205256 if compress is gzip_with_file_name else 529205248
    assert int.from_bytes(content[:4], "big") == expected_magic
    path = tmp_path / "images.idx"
    path.write_bytes(content)

    images = read_idx(path)

    np.testing.assert_array_equal(images, [[[0, 255], [128, 1]], [[2, 3], [4, 5]]])


def test_bug_case_xml_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b'<?xml version="1.0"?>\n<Error><Code>AccessDenied</Code></Error>\n')

    with pytest.raises(ValueError) as error:
        read_idx(path)

    message = str(error.value)
    assert "0x3C3F786D" in message
    assert "1010792557" in message
    assert "HTML or XML" in message
    assert str(path) in message


def test_bug_case_empty_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match="empty") as error:
        read_idx(path)

    assert str(path) in str(error.value)


def test_bug_case_truncated_data(tmp_path):
    path = tmp_path / "images.idx"
    path.write_bytes(VALID_IMAGES[:-3])

    with pytest.raises(ValueError) as error:
        read_idx(path)

    message = str(error.value)
    assert "needs 8 data bytes" in message
    assert "only 5 follow" in message
    assert str(path) in message


def test_bug_case_mismatched_pair(tmp_path):
    images_path = tmp_path / "images.idx"
    labels_path = tmp_path / "labels.idx"
    images_path.write_bytes(VALID_IMAGES)
    labels_path.write_bytes(VALID_LABELS)

    with pytest.raises(ValueError) as error:
        read_idx_pair(images_path, labels_path)

    message = str(error.value)
    assert "number of images (2" in message
    assert "number of labels (3" in message


def test_read_idx_pair_valid(tmp_path):
    images_path = tmp_path / "images.idx"
    labels_path = tmp_path / "labels.idx"
    images_path.write_bytes(VALID_IMAGES)
    labels_path.write_bytes(bytes.fromhex("00000801 00000002 0700"))

    images, labels = read_idx_pair(images_path, labels_path)

    assert images.shape == (2, 2, 2)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [7, 0])


def test_read_idx_pair_swapped_files(tmp_path):
    images_path = tmp_path / "images.idx"
    labels_path = tmp_path / "labels.idx"
    images_path.write_bytes(VALID_IMAGES)
    labels_path.write_bytes(VALID_LABELS)

    with pytest.raises(ValueError, match="swap") as error:
        read_idx_pair(labels_path, images_path)

    assert "looks like labels" in str(error.value)


def test_read_idx_pair_images_as_labels(tmp_path):
    images_path = tmp_path / "images.idx"
    images_path.write_bytes(VALID_IMAGES)

    with pytest.raises(ValueError, match="looks like images"):
        read_idx_pair(images_path, images_path)


def test_read_idx_pair_float_labels(tmp_path):
    images_path = tmp_path / "images.idx"
    labels_path = tmp_path / "labels.idx"
    images_path.write_bytes(VALID_IMAGES)
    labels_path.write_bytes(encode_idx(np.array([0.5, 1.0], dtype=np.float32)))

    with pytest.raises(ValueError, match="integer element type"):
        read_idx_pair(images_path, labels_path)


def test_read_idx_gzip_twice(tmp_path):
    path = tmp_path / "images.idx.gz.gz"
    path.write_bytes(gzip.compress(gzip.compress(VALID_IMAGES)))

    with pytest.raises(ValueError, match="gzip-compressed twice"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "images.idx.gz"
    path.write_bytes(gzip.compress(VALID_IMAGES)[:-10])

    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_read_idx_text_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"label,pixel0\n5,0\n")

    with pytest.raises(ValueError, match="look like text"):
        read_idx(path)


def test_read_idx_zip_file(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros(2))

    with pytest.raises(ValueError, match="ZIP archive"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes.fromhex("00000A01 00000001 00"))

    with pytest.raises(ValueError, match="bad magic number 0x00000A01"):
        read_idx(path)


@pytest.mark.parametrize("length", [1, 3])
def test_read_idx_short_magic(tmp_path, length):
    path = tmp_path / "short.idx"
    path.write_bytes(VALID_IMAGES[:length])

    with pytest.raises(ValueError, match=f"incomplete header.*only {length} bytes"):
        read_idx(path)


def test_read_idx_truncated_sizes(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(VALID_IMAGES[:10])

    # 3 dimensions need 4 + 3 * 4 = 16 header bytes.
    with pytest.raises(ValueError, match="3 dimensions need a 16-byte header.*only 10 bytes"):
        read_idx(path)


def test_read_idx_extra_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(VALID_LABELS + b"\x01\x02")

    with pytest.raises(ValueError, match="needs 3 data bytes, but 5 follow"):
        read_idx(path)


def test_read_idx_wide_type_truncated(tmp_path):
    path = tmp_path / "ints.idx"
    path.write_bytes(encode_idx(np.array([1, 2, 3], dtype=np.int32))[:-1])

    # 3 int32 values need 12 bytes; one byte is cut off.
    with pytest.raises(ValueError, match="needs 12 data bytes, but only 11 follow"):
        read_idx(path)
