"""The KServe adapter ``kserve`` (kubeflow-gcp, kubeflow-ibm): the real KServe ModelServer as the stand-in.

In servebench's process (start the stand-in, encode/decode, render the manifests):

* ``target``    -- the adapter: ``KServeTarget``, V1/V2 requests, readiness of every worker
* ``settings``  -- ``KServeSettings``: one kserve target's table, checked
* ``manifests`` -- the InferenceService, the predictor's Dockerfile, the Istio policy, the
  cluster-local host

In the stand-in's server process (``python -m targets.kserve.server.main``; ``server/``
imports nothing of servebench, so the rendered Dockerfile copies just these files):

* ``server.main``          -- the entry point: options, logging, the ModelServer
* ``server.loopback``      -- kserve's ModelServer bound to one host, serving the inference protocol only
* ``server.model``         -- the MNIST ``kserve.Model`` over the SavedModel
* ``server.inputs``        -- V1/V2 request bodies -> float32 images, validated
* ``server.guards``        -- ASGI guards: which endpoints and bodies are answered at all
* ``server.http_protocol`` -- uvicorn's httptools protocol with header/body limits
* ``server.http_rules``    -- what that HTTP layer refuses, and the JSON answers
* ``server.savedmodel``    -- where a SavedModel lies (also used by the adapter to find it)
* ``server.tabular``       -- the tabular ``kserve.Model`` over ``weights.npz`` (setting ``model``)
* ``server.tabular_inputs`` -- its V1/V2 request bodies -> float64 feature rows, validated
"""
