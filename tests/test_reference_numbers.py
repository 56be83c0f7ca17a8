"""Every curve study's numbers stay bit for bit what they were when recorded.

``scripts/record_reference_numbers.py`` ran one small job per curve study preset (3
replications, 4 sizes, 4 theory refits) and wrote its replications' excess and theta, theta*
and the theory's curves as hex floats to ``tests/data/reference_numbers.json``. The same jobs
run here with the current code must give the same bits: code that is only moved or shared
(the Newton kernel, the class laws' module) must not reorder a floating-point operation.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from record_reference_numbers import PRESETS, REFERENCE, cell_numbers  # noqa: E402

RECORDED = json.loads(REFERENCE.read_text())


def test_every_curve_preset_is_recorded():
    assert sorted(RECORDED) == sorted(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_numbers_are_bit_identical(preset, tmp_path):
    now = cell_numbers(preset, tmp_path)
    recorded = RECORDED[preset]
    assert sorted(now) == sorted(recorded)
    changed = {name: _first_differences(now[name], recorded[name]) for name in recorded if now[name] != recorded[name]}
    assert not changed, f"{preset}: differs from the recording (now, recorded): {changed}"


def _first_differences(now, recorded, count: int = 3) -> list:
    if now is None or recorded is None or len(now) != len(recorded):
        return [(now, recorded)]
    return [(a, b) for a, b in zip(now, recorded) if a != b][:count]
