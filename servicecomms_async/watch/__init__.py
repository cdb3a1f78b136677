"""Watch: a durable change feed of what changed in each tenant's service health since the last poll."""
