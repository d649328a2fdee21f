"""Generated protobuf messages of the wire contract `ewx.v1` (proto/ewx/v1/ewx.proto).

Regenerate with `python scripts/gen_protos.py`; a test fails when these drift.
Only node/convert.py and the gateway should touch the pb2 types directly.
"""
