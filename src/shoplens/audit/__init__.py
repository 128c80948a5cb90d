"""Auditing a catalog: products filed under a wrong category, and duplicate products."""
