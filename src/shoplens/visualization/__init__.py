"""Figures of the catalog, the models and the searches."""
