"""Training reports: a self-contained HTML page with embedded PNG plots, and the metrics as JSON (no Spark)."""

from credspark.reporting.curves import ks_curve, roc_curve, threshold_curves
from credspark.reporting.report import (
    METRIC_ROWS,
    TrainingReport,
    metrics_document,
    render_html,
    report_figures,
    write_report,
)

__all__ = [
    "METRIC_ROWS",
    "TrainingReport",
    "ks_curve",
    "metrics_document",
    "render_html",
    "report_figures",
    "roc_curve",
    "threshold_curves",
    "write_report",
]
