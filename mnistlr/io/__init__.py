"""File formats: atomic writes, IDX, image files and the readers of prediction inputs (no learning)."""
