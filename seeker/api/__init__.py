"""The seeker's HTTP face: the Flask app, its OpenAPI document, the
dashboard and the Prometheus metrics."""
