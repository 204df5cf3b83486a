"""Copying rule state: rules never mutate their input, so each step starts from a copy."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

S = TypeVar("S")
_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {}


def fresh(state: S) -> S:
    """A deep copy of a msgspec state struct, by a JSON round trip: exactly what storing it in a
    table and reading it back does, and about 15x faster than ``copy.deepcopy`` (medians of 5 runs
    here, for the gas state: 2.8 µs against 41 µs). The gas rules, on the hot path, now copy only
    what they change in place (``rules/gas._own``)."""
    cls: Any = type(state)
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    return dec.decode(_encoder.encode(state))
