"""What runs inside the Flask stand-in's server process: the app, its gunicorn worker, and their checks.

``app`` (the Flask predict app), ``worker`` (the buffering gunicorn sync worker),
``framing`` (HTTP/1.1 request framing), ``photo`` (the digit page's photos).  Nothing here
imports servebench's own process code; only ``models.data`` (the one pixel normalisation).
"""
