"""What the service tells its operators: metrics, request ids, per-request log lines."""
