"""What runs inside the KServe stand-in's server process: kserve's ModelServer, guarded, serving the SavedModel.

Entry point: ``python -m targets.kserve.server.main``.  ``main`` (options, logging),
``loopback`` (the ModelServer on one host, inference protocol only), ``model`` (the
``kserve.Model``), ``inputs`` (request validation), ``guards`` (ASGI guards),
``http_protocol`` + ``http_rules`` (the HTTP layer's limits and refusals), ``savedmodel``
(where the SavedModel lies), ``tabular`` + ``tabular_inputs`` (a tabular model's
``weights.npz`` instead, with ``--model-kind tabular``).  Nothing here imports servebench's own process code.
"""
