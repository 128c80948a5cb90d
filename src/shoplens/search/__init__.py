"""Searching the image repository: nearest-neighbour indexes, the queries, and their evaluation."""
