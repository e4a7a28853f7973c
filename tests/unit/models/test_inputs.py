import numpy as np
import pandas as pd
import pytest

from credspark.models.inputs import arrays_from_frame, stack_array_column
from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

SPEC = FeatureSpec(static=(StaticFeature("age", "integer"), StaticFeature("limit")), channels=("a", "b"), T=3)


def _frame():
    return pd.DataFrame({
        "age": [30, 40],
        "limit": [1000.0, None],
        "seq": [np.arange(6, dtype=np.float32), np.arange(6, 12, dtype=np.float32)],
        "seq_mask": [np.array([0, 1, 1], dtype=np.int8), np.array([1, 1, 1], dtype=np.int8)],
        "label": [0, 1],
    })


def test_arrays_from_frame_layout_is_month_major():
    static, dynamic, mask, y = arrays_from_frame(_frame(), SPEC, with_label=True)
    assert static.shape == (2, 2) and np.isnan(static[1, 1])
    assert dynamic.shape == (2, 3, 2)
    # index t*C + c: month 1, channel 0 of row 0 is element 2
    assert dynamic[0, 1, 0] == 2 and dynamic[1, 2, 1] == 11
    np.testing.assert_array_equal(mask, [[0, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(y, [0, 1])


def test_wrong_lengths_and_missing_columns_are_named():
    bad = _frame()
    bad.at[1, "seq"] = np.arange(5, dtype=np.float32)
    with pytest.raises(SpecMismatchError, match="seq"):
        arrays_from_frame(bad, SPEC)
    with pytest.raises(SpecMismatchError, match="limit"):
        arrays_from_frame(_frame().drop(columns=["limit"]), SPEC)
    nolabel = _frame().astype({"label": "float"})
    nolabel.loc[0, "label"] = np.nan
    with pytest.raises(SpecMismatchError, match="label"):
        arrays_from_frame(nolabel, SPEC, with_label=True)


def test_stack_empty():
    assert stack_array_column(pd.Series([], dtype=object), 4).shape == (0, 4)


def test_a_static_only_frame_gives_an_empty_dynamic_block_and_refuses_a_sequence():
    spec = FeatureSpec(static=SPEC.static, channels=(), T=0)
    frame = _frame().assign(seq=[np.zeros(0, np.float32)] * 2, seq_mask=[np.zeros(0, np.int8)] * 2)
    static, dynamic, mask = arrays_from_frame(frame, spec)
    assert static.shape == (2, 2) and dynamic.shape == (2, 0, 0) and mask.shape == (2, 0)
    assert dynamic.dtype == np.float32 and mask.dtype == np.uint8
    with pytest.raises(SpecMismatchError, match="seq"):  # the rows of a source with a sequence
        arrays_from_frame(_frame(), spec)
