"""``runway score``: batch scoring of files with a registered model (pandas or Spark)."""
