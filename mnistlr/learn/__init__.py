"""Learning: training options, the fit, the linear model, its objective, solvers, kernels and model files."""
