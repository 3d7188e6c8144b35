"""The team stack: PostgreSQL, S3 and a shared ``mlflow server`` on one machine."""
