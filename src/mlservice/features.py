"""The model's inputs and outputs, defined once for training, the API, the form and the docs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str  # public name: API field, CSV column, form input
    source: str  # column name in scikit-learn's load_breast_cancer
    label: str
    unit: str
    description: str


FEATURES = (
    Feature(
        "radius_mean",
        "mean radius",
        "Radius (mean)",
        "pixels",
        "Mean distance from the nucleus centre to points on its perimeter.",
    ),
    Feature(
        "texture_mean",
        "mean texture",
        "Texture (mean)",
        "grey levels",
        "Standard deviation of grey-scale values inside the nucleus.",
    ),
    Feature(
        "smoothness_mean",
        "mean smoothness",
        "Smoothness (mean)",
        "ratio",
        "Local variation in radius lengths.",
    ),
    Feature(
        "texture_se",
        "texture error",
        "Texture (standard error)",
        "grey levels",
        "Standard error of the texture across the nuclei in the image.",
    ),
    Feature(
        "smoothness_se",
        "smoothness error",
        "Smoothness (standard error)",
        "ratio",
        "Standard error of the smoothness across the nuclei in the image.",
    ),
    Feature(
        "symmetry_se",
        "symmetry error",
        "Symmetry (standard error)",
        "ratio",
        "Standard error of the nucleus symmetry across the nuclei in the image.",
    ),
)

FEATURE_NAMES = tuple(feature.name for feature in FEATURES)

# scikit-learn codes the target as 0 = malignant, 1 = benign; these are the names by code.
LABELS = ("malignant", "benign")

# The least held-out ROC-AUC a model may have: training refuses a weaker one, and the quality
# gate (`mlservice compare-cards`) fails it. Here, not in training.py, so the gate runs without
# loading scikit-learn.
ROC_AUC_FLOOR = 0.95
