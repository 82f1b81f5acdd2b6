"""Tests that the installed distribution carries the data files, their licence and notes.

The resource tests read through ``importlib.resources``, as ``chainrule.datasets`` does.
The distribution test reads the installed file list (the wheel's RECORD), so it fails
when package data is missing from the wheel even if the source tree has the files. An
editable install has no such list: there the test is skipped, or fails under CI=true,
whose install is not editable.
"""

import base64
import hashlib
import importlib.metadata
import importlib.resources
import json
from pathlib import Path

import pytest
from conftest import skip_or_fail

import chainrule

# Byte sizes of the official files, as published with them.
DATA_FILES = {
    "data/mnist/train-images-idx3-ubyte.gz": 9_912_422,
    "data/mnist/train-labels-idx1-ubyte.gz": 28_881,
    "data/mnist/t10k-images-idx3-ubyte.gz": 1_648_877,
    "data/mnist/t10k-labels-idx1-ubyte.gz": 4_542,
    "data/fashion-mnist/train-images-idx3-ubyte.gz": 26_421_880,
    "data/fashion-mnist/train-labels-idx1-ubyte.gz": 29_515,
    "data/fashion-mnist/t10k-images-idx3-ubyte.gz": 4_422_102,
    "data/fashion-mnist/t10k-labels-idx1-ubyte.gz": 5_148,
}
NOTE_FILES = [
    "data/fashion-mnist/LICENSE",
    "data/SOURCES.md",
    "data/mnist/MD5SUMS",
    "data/fashion-mnist/MD5SUMS",
]


def resource(relative_path):
    return importlib.resources.files("chainrule").joinpath(*relative_path.split("/"))


@pytest.mark.parametrize("relative_path", DATA_FILES)
def test_resource_data_file_size(relative_path):
    path = resource(relative_path)

    assert path.is_file()
    assert len(path.read_bytes()) == DATA_FILES[relative_path]


@pytest.mark.parametrize("relative_path", NOTE_FILES)
def test_resource_note_file_present(relative_path):
    assert resource(relative_path).is_file()


def test_fashion_mnist_licence_text():
    text = resource("data/fashion-mnist/LICENSE").read_text()

    assert "MIT License" in text
    assert "Zalando SE" in text


def test_sources_name_mnist_licence():
    text = resource("data/SOURCES.md").read_text()

    assert "CC BY-SA 3.0" in text


def test_metadata_lists_data_licences():
    metadata = importlib.metadata.metadata("chainrule")
    licence = metadata.get("License-Expression") or metadata.get("License") or ""

    assert "MNIST CC BY-SA 3.0" in licence
    assert "Fashion-MNIST MIT" in licence
    assert "Zalando" in licence


def is_editable(distribution):
    direct_url = distribution.read_text("direct_url.json")
    if direct_url is None:
        return False
    return json.loads(direct_url).get("dir_info", {}).get("editable", False)


def installed_distribution():
    distribution = importlib.metadata.distribution("chainrule")
    if is_editable(distribution):
        skip_or_fail(
            "chainrule is installed in editable mode, which records no package files; "
            "run `pip install .` to test the installed distribution"
        )
    return distribution


@pytest.mark.parametrize("relative_path", list(DATA_FILES) + NOTE_FILES)
def test_distribution_records_file(relative_path):
    distribution = installed_distribution()
    recorded = {str(file).replace("\\", "/"): file for file in distribution.files}

    file = recorded.get(f"chainrule/{relative_path}")

    assert file is not None, f"chainrule/{relative_path} is not in the installed file list"
    content = Path(distribution.locate_file(file)).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.new(file.hash.mode, content).digest()).rstrip(b"=")
    assert digest.decode() == file.hash.value


def test_tests_import_installed_copy():
    distribution = installed_distribution()
    installed_folder = Path(distribution.locate_file("chainrule")).resolve()

    assert Path(chainrule.__file__).resolve().parent == installed_folder
