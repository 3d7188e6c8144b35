"""``runway monitor`` and what it starts: drift, data quality and the live metric per window
of the prediction log, a report and a monitoring run, and retraining when the policy says so."""
