"""The load generator: sends predict requests to one target and records every answer.

It knows HTTP and time, not deployments: a target hands it ``Request`` objects and a
``Codec`` (request.py); it returns raw ``RequestRecord``s per step (records.py), and
statistics are pure functions of them. It imports only ``ground``.

* Sending: ``engine.py`` (the interface) and ``engines/`` (fast, aiohttp, httpx; memory on
  virtual time for tests); ``modes.py`` (closed-loop ``sequential``/``concurrent``,
  open-loop ``rate``), ``pacing.py`` (when each open-loop request is due), ``throttle.py``.
* The sweep: ``sweep_settings.py`` (``[sweep]``, one type), ``sweep.py`` (``run_sweep``),
  ``shard.py`` + ``barrier.py`` (one plan split over K clients, their step schedule).
* Reading the records: ``stats.py`` (summary rows, ``StepSummary``, percentiles and their
  bounds), ``quantile_bounds.py`` (order-statistic bounds, the SLO binomial test),
  ``saturation.py`` (did a rate step keep up), ``classify.py`` (error classes),
  ``cells.py`` (one results cell read as a number).
* Capacity: ``objective.py`` (``p99 <= 100 ms``, ``[capacity]``), ``slo_evidence.py`` (one
  rate's verdict at a stated confidence), ``capacity.py`` + ``concurrency_search.py`` (the
  pure search drivers).
* The client's own ceiling: ``calibration.py``, ``measure.py``, ``nullserver.py``.
"""
