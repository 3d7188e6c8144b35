"""The ONNX room: a version as ONNX (graph, conversion, runtime model, parity, edge predict).

Only :mod:`.graph` and :mod:`.convert` need the ``onnx`` extra (``onnx``,
``skl2onnx``); the runtime model, parity and the edge bundle's ``predict.py``
need onnxruntime alone, so nothing here imports ``onnx`` at package level.
"""
