"""Tests for Preprocessor and LabelMapping; expected values are worked out by hand or in
plain Python floats."""

import json
import statistics

import numpy as np
import pytest

from chainrule.preprocessing import LabelMapping, Preprocessor

# The public bug case on raw uint8 image inputs.
BUG_CASE_X = np.array([[0, 255], [255, 0], [128, 64]], dtype=np.uint8)
# Each value divided by 255: 128 / 255 = 0.50196078..., 64 / 255 = 0.25098039...
BUG_CASE_SCALED = [[0.0, 1.0], [1.0, 0.0], [0.5019607843, 0.2509803922]]


def test_bug_case_scaling_values():
    output = Preprocessor().fit_transform(BUG_CASE_X)

    assert output.dtype == np.float32
    np.testing.assert_allclose(output, BUG_CASE_SCALED, rtol=1e-7, atol=0)


def test_bug_case_input_unchanged():
    X = BUG_CASE_X.copy()

    Preprocessor(standardize=True).fit_transform(X)

    assert X.dtype == np.uint8
    np.testing.assert_array_equal(X, BUG_CASE_X)


def test_bug_case_float_input_same_output():
    preprocessor = Preprocessor(standardize=True).fit(BUG_CASE_X)

    from_uint8 = preprocessor.transform(BUG_CASE_X)
    from_float64 = preprocessor.transform(BUG_CASE_X.astype(np.float64))

    np.testing.assert_array_equal(from_uint8, from_float64)


def test_bug_case_no_uint8_wraparound():
    output = Preprocessor(scale=False, standardize=True, dtype="float64").fit_transform(BUG_CASE_X)

    # Column statistics in plain Python floats; in uint8, 0 - 128 would wrap to 128.
    for column in range(2):
        values = [float(value) for value in BUG_CASE_X[:, column]]
        mean = statistics.fmean(values)
        std = statistics.pstdev(values)
        expected = [(value - mean) / std for value in values]
        np.testing.assert_allclose(output[:, column], expected, rtol=1e-12)


def test_transform_flattens_images():
    X = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)

    output = Preprocessor().fit_transform(X)

    assert output.shape == (2, 12)
    assert output.flags.c_contiguous
    np.testing.assert_allclose(output[1], np.arange(12, 24) / 255, rtol=1e-7)


def test_transform_float64_dtype():
    output = Preprocessor(dtype="float64").fit_transform(BUG_CASE_X)

    assert output.dtype == np.float64
    np.testing.assert_allclose(output, [[0, 1], [1, 0], [128 / 255, 64 / 255]], rtol=1e-15)


def test_transform_never_views_input():
    X = np.ones((3, 4), dtype=np.float32)
    preprocessor = Preprocessor().fit(X)

    output = preprocessor.transform(X)
    output[0, 0] = 7.0

    assert not np.shares_memory(output, X)
    assert X[0, 0] == 1.0


def test_transform_non_contiguous_input():
    X = np.arange(24, dtype=np.uint8).reshape(4, 6)[:, ::2]

    output = Preprocessor().fit_transform(X)

    assert output.flags.c_contiguous
    np.testing.assert_allclose(output[0], [0 / 255, 2 / 255, 4 / 255], rtol=1e-7)


def test_float_training_data_not_scaled():
    X = np.array([[0.5, 2.0], [1.5, -3.0]])

    output = Preprocessor().fit_transform(X)

    assert Preprocessor().fit(X).scale_divisor is None
    np.testing.assert_array_equal(output, X.astype(np.float32))


def test_scale_off_keeps_pixel_values():
    output = Preprocessor(scale=False).fit_transform(BUG_CASE_X)

    np.testing.assert_array_equal(output, [[0, 255], [255, 0], [128, 64]])


def test_constant_feature_std_one():
    # Column 0 is constant (5 in every row), like MNIST's border pixels.
    X = np.array([[5, 0], [5, 10], [5, 20]], dtype=np.uint8)

    preprocessor = Preprocessor(scale=False, standardize=True)
    output = preprocessor.fit_transform(X)

    assert preprocessor.std[0] == 1.0
    np.testing.assert_array_equal(output[:, 0], [0.0, 0.0, 0.0])


def test_constant_unrepresentable_feature_std_one():
    # 0.1 has no exact binary form, so its computed mean may differ from 0.1 by rounding.
    X = np.full((1000, 1), 0.1)

    preprocessor = Preprocessor(standardize=True, dtype="float64").fit(X)

    assert preprocessor.std[0] == 1.0


def test_standardize_uses_training_statistics():
    train = np.array([[0.0], [2.0], [4.0]])
    test = np.array([[10.0]])

    preprocessor = Preprocessor(standardize=True, dtype="float64").fit(train)
    output = preprocessor.transform(test)

    # Training mean 2, population std sqrt((4 + 0 + 4) / 3) = sqrt(8 / 3) = 1.6329931618554521.
    assert output[0, 0] == pytest.approx((10.0 - 2.0) / 1.6329931618554521, rel=1e-12)


def test_standardize_scaled_pixels():
    X = np.array([[0], [255]], dtype=np.uint8)

    preprocessor = Preprocessor(standardize=True, dtype="float64").fit(X)

    # After scaling the column is [0, 1]: mean 0.5, population std 0.5.
    assert preprocessor.mean[0] == pytest.approx(0.5, rel=1e-15)
    assert preprocessor.std[0] == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_allclose(preprocessor.transform(X)[:, 0], [-1.0, 1.0], rtol=1e-15)


def test_standardize_many_blocks():
    # More rows than one statistics block, to cover the blockwise accumulation.
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, size=(10_000, 3), dtype=np.uint8)

    preprocessor = Preprocessor(standardize=True, dtype="float64").fit(X)

    column = [float(value) / 255 for value in X[:, 1]]
    assert preprocessor.mean[1] == pytest.approx(statistics.fmean(column), rel=1e-12)
    assert preprocessor.std[1] == pytest.approx(statistics.pstdev(column), rel=1e-12)


def test_dict_round_trip_json():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(20, 4, 4), dtype=np.uint8)
    preprocessor = Preprocessor(standardize=True).fit(X)

    restored = Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))

    np.testing.assert_array_equal(restored.transform(X), preprocessor.transform(X))


def test_dict_unfitted_round_trip():
    data = Preprocessor(scale=False, dtype="float64").to_dict()

    restored = Preprocessor.from_dict(json.loads(json.dumps(data)))

    assert not restored.fitted
    assert restored.to_dict() == data


def test_from_dict_wrong_mean_length():
    data = Preprocessor(standardize=True).fit(BUG_CASE_X).to_dict()
    data["mean"] = data["mean"][:1]

    with pytest.raises(ValueError, match="mean must be a list of 2"):
        Preprocessor.from_dict(data)


def test_from_dict_missing_keys():
    with pytest.raises(ValueError, match="lack the keys"):
        Preprocessor.from_dict({"scale": True})


def test_transform_before_fit():
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor().transform(BUG_CASE_X)


def test_transform_wrong_feature_count():
    preprocessor = Preprocessor().fit(np.zeros((2, 28, 28), dtype=np.uint8))

    with pytest.raises(ValueError, match="has 783 features.*fitted on 784"):
        preprocessor.transform(np.zeros((2, 783), dtype=np.uint8))


def test_transform_flat_input_after_image_fit():
    preprocessor = Preprocessor().fit(np.zeros((2, 28, 28), dtype=np.uint8))

    output = preprocessor.transform(np.full((3, 784), 255, dtype=np.uint8))

    np.testing.assert_array_equal(output, np.ones((3, 784), dtype=np.float32))


def test_single_sample_1d_rejected():
    preprocessor = Preprocessor().fit(BUG_CASE_X)

    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        preprocessor.transform(np.array([0, 255], dtype=np.uint8))


def test_fit_empty_rejected():
    with pytest.raises(ValueError, match="0 samples"):
        Preprocessor().fit(np.zeros((0, 4)))


def test_fit_nan_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Preprocessor().fit(np.array([[1.0, np.nan]]))


def test_transform_overflow_rejected():
    preprocessor = Preprocessor().fit(np.zeros((1, 1)))

    with pytest.raises(ValueError, match="too large for float32"):
        preprocessor.transform(np.array([[1e300]]))


def test_string_input_rejected():
    with pytest.raises(TypeError, match="real numbers"):
        Preprocessor().fit(np.array([["a", "b"]]))


@pytest.mark.parametrize("dtype", ["float16", "int32", "cheese"])
def test_invalid_dtype_rejected(dtype):
    with pytest.raises(ValueError, match="dtype must be one of"):
        Preprocessor(dtype=dtype)


def test_scale_not_bool_rejected():
    with pytest.raises(TypeError, match="scale must be True or False"):
        Preprocessor(scale=1)


# LabelMapping


def test_mapping_sorted_classes():
    mapping = LabelMapping.from_labels([3, 1, 2, 3])

    np.testing.assert_array_equal(mapping.classes, [1, 2, 3])
    np.testing.assert_array_equal(mapping.encode([3, 1, 2, 3]), [2, 0, 1, 2])


def test_mapping_emnist_letters():
    labels = np.arange(1, 27)

    mapping = LabelMapping.from_labels(labels)
    encoded = mapping.encode(labels)

    assert encoded.dtype == np.int64
    np.testing.assert_array_equal(encoded, np.arange(26))
    np.testing.assert_array_equal(mapping.decode(encoded), labels)


def test_mapping_strings():
    mapping = LabelMapping.from_labels(["dog", "cat", "dog"])

    np.testing.assert_array_equal(mapping.encode(["cat", "dog"]), [0, 1])
    assert mapping.decode(np.array([1, 0])).tolist() == ["dog", "cat"]


def test_mapping_given_order():
    mapping = LabelMapping(["zebra", "ant"])

    np.testing.assert_array_equal(mapping.encode(["ant", "zebra", "ant"]), [1, 0, 1])


def test_mapping_unknown_labels_named():
    mapping = LabelMapping.from_labels([1, 2, 3])

    with pytest.raises(ValueError, match=r"unknown labels \[4, 7\]"):
        mapping.encode([1, 4, 7, 4])


def test_mapping_string_labels_for_int_classes():
    mapping = LabelMapping.from_labels([0, 1])

    with pytest.raises(ValueError, match="unknown labels"):
        mapping.encode(["0"])


def test_mapping_integral_floats_accepted():
    mapping = LabelMapping.from_labels(np.array([1.0, 2.0]))

    assert mapping.classes.dtype == np.int64
    np.testing.assert_array_equal(mapping.classes, [1, 2])


def test_mapping_fractional_floats_rejected():
    with pytest.raises(ValueError, match="non-integer"):
        LabelMapping.from_labels([0.5, 1.0])


def test_mapping_booleans_rejected():
    with pytest.raises(TypeError, match="booleans"):
        LabelMapping.from_labels(np.array([True, False]))


def test_mapping_decode_out_of_range():
    mapping = LabelMapping.from_labels([1, 2])

    with pytest.raises(ValueError, match=r"0\.\.1, got \[2\]"):
        mapping.decode([0, 2])


@pytest.mark.parametrize("labels", [[5, 1, 9], ["b", "a"]], ids=["int", "str"])
def test_mapping_dict_round_trip(labels):
    mapping = LabelMapping.from_labels(labels)

    restored = LabelMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))

    assert restored == mapping
    assert restored.classes.dtype.kind == mapping.classes.dtype.kind


def test_mapping_duplicate_classes_rejected():
    with pytest.raises(ValueError, match=r"repeated: \[2\]"):
        LabelMapping([1, 2, 2])


def test_mapping_classes_are_a_copy():
    classes = np.array(["a", "b"])

    mapping = LabelMapping(classes)
    classes[0] = "z"

    assert mapping.classes.tolist() == ["a", "b"]
    assert classes.flags.writeable
