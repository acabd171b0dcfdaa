"""The Open Inference Protocol (KServe V2 / Triton) as data: tensors, their datatypes, and payloads.

What the load generator needs to send any model's inputs and read any model's outputs,
independent of a deployment (targets/ chooses URLs and protocols; this package only turns
named tensors into request bodies and answers back into tensors).

* ``datatypes.py``: the V2 datatype names, their numpy dtypes, byte sizes and gRPC content
  fields -- one table every encoder and decoder reads.
"""
