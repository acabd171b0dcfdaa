"""Tests of the KServe stand-ins: guards, HTTP layer, hardening, manifests, Istio policy, server, unit pieces."""
