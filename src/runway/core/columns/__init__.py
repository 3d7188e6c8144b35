"""The columns room: kinds, the data contract, column checks, the reference profile, drift.

What a column is and what a model accepts; every other room and layer builds on it.
"""
