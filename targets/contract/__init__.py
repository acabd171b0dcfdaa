"""The contract every target adapter passes, as a library: ``bench check-target`` and the tests run it.

* ``suite`` -- the checks (start, loopback-only, real images, bad input, page protocol, stop)
  and ``run_contract``, which runs them all against one target
* ``load``  -- the checks under load: a burst of connections, keep-alive, a latency floor
* ``tools`` -- what the checks send and look at: bad bodies, listening sockets
"""
