"""The study's digit-recognition web page (its section 5.4, Figure 19), served two ways.

``webui/static/`` is a plain HTML + JavaScript page with no build step and no external
fetches: a user picks or drops a photo of a digit, the page sends it to a predict API on
its own origin (``api/predict``) and shows the digit and the round-trip time.

* Locally, :mod:`webui.server` (``python -m bench ui``) serves the page and a same-origin
  proxy to one configured target (a local stand-in or a remote endpoint).
* On a cluster, :mod:`webui.manifests` (``python -m bench manifests ui``) renders an nginx
  image serving the same files and proxying ``/api/predict`` to the model service, plus
  the Pod and LoadBalancer Service the study used.

:mod:`webui.pageconfig` builds the ``config.json`` both read, so the page behaves alike.
"""
