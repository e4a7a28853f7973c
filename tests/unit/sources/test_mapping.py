"""The ingest_table mapping file: checked against the contract and the declared attributes, before Spark starts."""

import datetime as dt

import pytest

from credspark.config import AttributeConfig
from credspark.errors import ConfigError
from credspark.sources.mapping import load_mapping, parse_mapping

ATTRS = {"bureau_score": AttributeConfig(), "housing": AttributeConfig(kind="categorical", categories=("own",))}


def test_a_customers_mapping_with_a_flat_label_parses_with_types_from_the_targets():
    m = parse_mapping({"table": "customers", "key": "ID", "columns": {
        "SCORE": "bureau_score", "HOME": "housing", "YOB": {"name": "birth_year", "type": "double"}},
        "label": {"column": "bad", "positive": [1, "yes"], "observation_date": "2025-01-15", "horizon_months": 12}},
        ATTRS)
    assert [(c.source, c.name, c.type) for c in m.columns] == [
        ("SCORE", "bureau_score", "double"), ("HOME", "housing", "string"), ("YOB", "birth_year", "double")]
    assert m.label.positive == ("1", "yes") and m.label.observation_date == dt.date(2025, 1, 15)
    assert m.label.horizon_months == 12


@pytest.mark.parametrize(("data", "message"), [
    ({"table": "statements", "key": "ID"}, "'table': 'statements' is not one of"),
    ({"table": "customers", "key": "ID", "columns": {"X": "debt"}},
     "'columns.X': 'debt' is neither a column of customers nor a declared attribute"),
    ({"table": "customers", "key": "ID", "columns": {"X": "housing", "Y": "housing"}}, r"\['housing'\] mapped more"),
    ({"table": "customers", "key": "ID", "colums": {}}, "unknown mapping key 'colums'"),
    ({"table": "customers", "key": "ID", "columns": {"X": {"name": "bureau_score", "type": "float64"}}},
     "'columns.X.type'"),
    ({"table": "attributes", "key": "ID", "columns": {"X": "bureau_score"}}, "'snapshot_date'"),
    ({"table": "customers", "key": "ID", "label": {"column": "y"}}, "'label.observation_date'"),
    ({"table": "customers", "key": "ID", "label": {"column": "y", "observation_date": "2025-01-15",
                                                   "horizon_months": 0}}, "'label.horizon_months'"),
])
def test_a_wrong_mapping_is_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_mapping(data, ATTRS)


def test_the_mapping_file_is_read_with_safe_load(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("table: !!python/object/apply:os.system ['true']\nkey: ID\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(path, ATTRS)
