"""benchmarks/_uci_arrays.py: the UCI file as arrays and the paper's split (used by the benchmarks only)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _uci_arrays import load_uci_arrays, paper_split  # noqa: E402


def test_uci_arrays_shapes_and_counts(uci_csv):
    d = load_uci_arrays(uci_csv)
    assert d.static.shape == (30000, 5) and d.dynamic.shape == (30000, 6, 3) and d.mask.all()
    assert int(d.y.sum()) == 6636
    assert set(np.unique(d.static[:, 2])) <= {1, 2, 3, 4} and set(np.unique(d.static[:, 3])) <= {1, 2, 3}
    d.spec.validate_arrays(d.static, d.dynamic, d.mask)
    # row 1 of the file: PAY_0=2 (September, the last month), BILL_AMT1=3913, PAY_AMT6=0 (April, first month)
    assert d.dynamic[0, 5, 0] == 2 and d.dynamic[0, 5, 1] == 3913 and d.dynamic[0, 0, 2] == 0
    assert d.raw.shape == (30000, 23)


def test_paper_split_is_disjoint_stratified_and_seeded():
    y = np.r_[np.zeros(780, int), np.ones(220, int)]
    tr, va, te = paper_split(y, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(np.intersect1d(tr, va)) == 0
    assert len(tr) + len(va) + len(te) == 1000 and len(te) == 300 and len(va) == 140
    assert abs(y[te].mean() - 0.22) < 0.01
    assert np.array_equal(paper_split(y, seed=0)[2], te) and not np.array_equal(paper_split(y, seed=1)[2], te)
