"""Pure building blocks in four rooms: columns, training, governance and onnx.

Nothing here talks to MLflow or a server; functions take what they need and
return values, so every rule can be tested in memory. The rooms are layered
(governance > training | onnx > columns > the shared modules here: text,
threads, validation, documents); ``make lint`` keeps it so.
"""
