"""`dialects.common.check_type` answers as the engine worker's check (`engines.wire.check_type`) does, for every
kind of value a JSON body holds."""

from __future__ import annotations

from typing import Any

import pytest

from engines import wire
from router.dialects.common import check_type
from router.errors import ApiError

VALUES: list[Any] = [None, True, False, 0, 1, -3, 1.5, "", "x", [], [1], {}, {"a": 1}]
KINDS: list[type | tuple[type, ...]] = [str, int, bool, float, list, dict, (int, float)]


def _wire(body: dict[str, Any], kind: type | tuple[type, ...], required: bool) -> tuple[str, Any]:
    try:
        return "ok", wire.check_type(body, "f", kind, "a thing", required)
    except wire.WireError as err:
        return "error", (err.status, err.message, err.code, err.param)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("required", [False, True])
def test_each_value_is_taken_or_refused_as_the_wire_check_does(kind: type | tuple[type, ...], required: bool) -> None:
    for body in [{}, *({"f": v} for v in VALUES)]:
        want = _wire(body, kind, required)
        try:
            got: tuple[str, Any] = ("ok", check_type(body, "f", kind, "a thing", required))
        except ApiError as err:
            got = ("error", (err.status, err.message, err.code, err.param))
        assert got == want, body
        if want[0] == "ok":
            assert got[1] is want[1]
