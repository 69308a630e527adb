"""Evaluation: metrics that agree with scikit-learn, and figures."""
