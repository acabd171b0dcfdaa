"""Tests of webui/: the digit page's server, proxy, config and manifests, and the page in a real browser."""
