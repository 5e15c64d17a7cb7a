"""cyclic_gc_paused: off inside, back to what it was afterwards, even on an error."""

from __future__ import annotations

import gc
import io

import pytest

from airflow_provider_logproc.consume import ion_json
from airflow_provider_logproc.garbage_collection import cyclic_gc_paused


def test_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), cyclic_gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_left_off_if_it_was_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_ion_conversion_runs_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = ion_json._RecordWriter.read_stream

    def spy(self: ion_json._RecordWriter, records: object) -> None:
        seen.append(gc.isenabled())
        real(self, records)  # type: ignore[arg-type]

    monkeypatch.setattr(ion_json._RecordWriter, "read_stream", spy)
    out = io.BytesIO()
    ion_json.convert_ion_to_json(io.BytesIO(b'{value:{a:1}}\n{value:{a:2}}'), out.write, io.BytesIO().write)
    assert seen == [False] and out.getvalue() == b'{"a":1}\n{"a":2}\n'
    assert gc.isenabled()
