"""Pure building blocks: specs and policies, data, pipelines, metrics, contracts, gates.

Nothing here talks to MLflow or a server; functions take what they need and
return values, so every rule can be tested in memory.
"""
