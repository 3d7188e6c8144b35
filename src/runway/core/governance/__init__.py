"""The governance room: promotion and monitoring policies, gates, the audit chain, model trust."""
