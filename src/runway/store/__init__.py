"""The only code that talks to MLflow: tracking, models, the registry, its lock and
audit trail, and the prediction log sink.

Configured once per process (:func:`runway.store.tracking.configure`), never at
import time and never from library functions.
"""
