"""Pure DataFrame -> DataFrame feature transforms: monthly activity, sequences, static features, labels."""

from credspark.features.labels import default_events, horizon_end, with_labels
from credspark.features.sequences import (
    CHANNEL_SOURCE,
    STATEMENT_CHANNELS,
    SUPPORTED_CHANNELS,
    TRANSACTION_CHANNELS,
    activity_by_as_of,
    is_month_end,
    month_end,
    month_index,
    monthly_activity,
    resolve_channels,
    sequence_rows,
    with_sequences,
)
from credspark.features.spec import feature_table_properties, spec_from_table, spec_from_table_properties
from credspark.features.static import (
    PROFILE_FEATURES,
    profile_aggregations,
    static_aggregations,
    static_features,
    with_profile_features,
)

__all__ = [
    "CHANNEL_SOURCE",
    "PROFILE_FEATURES",
    "STATEMENT_CHANNELS",
    "SUPPORTED_CHANNELS",
    "TRANSACTION_CHANNELS",
    "activity_by_as_of",
    "default_events",
    "feature_table_properties",
    "horizon_end",
    "is_month_end",
    "month_end",
    "month_index",
    "monthly_activity",
    "profile_aggregations",
    "resolve_channels",
    "sequence_rows",
    "spec_from_table",
    "spec_from_table_properties",
    "static_aggregations",
    "static_features",
    "with_labels",
    "with_profile_features",
    "with_sequences",
]
