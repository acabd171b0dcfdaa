"""The Open Inference Protocol (KServe V2 / Triton) as data: tensors, their datatypes, and payloads.

What the load generator needs to send any model's inputs and read any model's outputs,
independent of a deployment (targets/ chooses URLs and protocols; this package only turns
named tensors into request bodies and answers back into tensors).

* ``datatypes.py``: the V2 datatype names, their numpy dtypes, byte sizes and gRPC content
  fields -- one table every encoder and decoder reads.
* ``v2_json.py``: an input set -> the V2 JSON infer body; a JSON answer -> an output set
  (input/output sets: ``dict[str, numpy.ndarray]``, batch dimension included).
* ``metadata.py``: ``GET /v2/models/NAME`` read into declared tensors (``TensorSpec``).
* ``input_data.py``: perf_analyzer's ``--input-data`` JSON and JSON-lines bodies, read and
  checked (size, format, base64; then against the metadata) before anything is sent.
* ``synthesis.py``: seeded random (or zero) inputs from the metadata; ``--shape``.
* ``checking.py``: answers against the declared outputs and against expected outputs.
* ``tensor_samples.py``: ``TensorCodec`` (what a target offers for any model) and the
  sweep's samples built from input sets (:mod:`loadgen.samples`).
"""
