"""errormodels: operand statistics, predicted layer error per multiplier, sigma -> multiplier
matching (numpy/scipy only)."""
from errormodels.catalog import ErrorCatalog, error_grid
from errormodels.compensate import (
                                 Compensation,
                                 activation_pmf,
                                 bias_corrections,
                                 channel_error_means,
                                 compensated,
                                 shifted_corrections,
)
from errormodels.errors import SigmasError, StatsError
from errormodels.match import Metric, Rule, match, select, tolerances
from errormodels.predict import (
                                 Method,
                                 Prediction,
                                 error_moments,
                                 feasibility,
                                 moments_to_prediction,
                                 predict,
)
from errormodels.sampled import SampledOperands, sampled_moments
from errormodels.sigmas import (
                                 SIGMAS_FILE,
                                 LayerSigma,
                                 pair_with_stats,
                                 parse_sigmas,
                                 read_sigmas,
                                 sigmas_document,
)
from errormodels.stats import (
                                 ACT_DOMAIN,
                                 STATS_FILE,
                                 WEIGHT_DOMAIN,
                                 OperandStats,
                                 align,
                                 histogram,
                                 load_stats,
                                 save_stats,
)
from errormodels.validation import (
                                 VALIDATION_FILE,
                                 ValidationRow,
                                 median_abs_error,
                                 read_validation,
                                 write_validation,
)
from hwlib.assignment import (
                                 ASSIGNMENT_FILE,
                                 Assignment,
                                 LayerAssignment,
                                 read_assignment,
                                 write_assignment,
)
from hwlib.catalogs import Catalog
from hwlib.errors import AssignmentError

__all__ = [
    "ACT_DOMAIN", "ASSIGNMENT_FILE", "Assignment", "AssignmentError", "Catalog", "Compensation",
    "ErrorCatalog", "activation_pmf", "bias_corrections", "channel_error_means", "compensated",
    "LayerAssignment", "LayerSigma", "Method", "Metric", "OperandStats", "Prediction", "Rule",
    "SIGMAS_FILE", "STATS_FILE", "SampledOperands", "SigmasError", "StatsError",
    "VALIDATION_FILE", "ValidationRow", "sampled_moments",
    "WEIGHT_DOMAIN", "align", "shifted_corrections",
    "error_grid", "error_moments", "feasibility", "histogram", "load_stats", "match",
    "median_abs_error", "read_validation", "write_validation",
    "moments_to_prediction", "pair_with_stats", "parse_sigmas", "predict",
    "read_assignment", "read_sigmas", "save_stats", "select", "sigmas_document", "tolerances",
    "write_assignment",
]
