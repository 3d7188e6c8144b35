"""The training room: the spec, data and splits, the pipeline, evaluation, plots, the catalog."""
