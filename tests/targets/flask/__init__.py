"""Tests of the Flask app, its k8s stand-in (replicas) and the gunicorn worker's HTTP framing."""
