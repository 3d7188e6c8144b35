"""Use cases: train, sweep, register, promote and roll back.

Each job composes ``core`` (what to compute) with ``store`` (where it is
recorded); none of them parses arguments or prints.
"""
