"""The Flask adapters: ``flask`` (bare metal, greene-linserv) and ``k8s`` (the same app in replicas, k8s-ibm).

In servebench's process (start the stand-in, encode/decode, render the manifests):

* ``target`` -- adapter ``flask``: the app under gunicorn, its settings, the systemd/nginx/Slurm files
* ``k8s``    -- adapter ``k8s``: ``replicas`` gunicorn masters sharing one port (SO_REUSEPORT),
  the Deployment, Service and training Job

In the stand-in's server process (gunicorn; ``server/`` imports nothing of servebench but
``models.data``, so the rendered Dockerfile copies just these files):

* ``server.app``     -- the Flask predict app (``targets.flask.server.app:app`` for gunicorn)
* ``server.worker``  -- the gunicorn sync worker that reads each request in full, under deadlines
* ``server.framing`` -- where one HTTP/1.1 request ends and whether its framing is acceptable
* ``server.photo``   -- which photo bytes the app accepts, and how they become model input
"""
