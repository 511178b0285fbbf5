"""mscm: MSCMNet for visible-infrared person re-identification, trained on Ray Train,
searched with Ray Tune + Optuna, tracked in MLflow."""

__version__ = "0.1.0"
