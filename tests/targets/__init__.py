"""Tests of targets/: the framework at the top (registry, processes, local server, contract, remote,
lifecycle, bad input); the adapters in kserve/ and flask/."""
