"""Job files: atomic writes (write a temporary sibling, then rename) so that a killed job never
leaves a half-written file that a resumed sweep would trust."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd


def json_number(x):
    """x as a float for summary.json, None when missing or not finite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def json_numbers(a) -> list:
    """An array as a flat list of json_number values."""
    return [json_number(v) for v in np.asarray(a, dtype=float).ravel()]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet without pandas' index metadata, so equal tables give equal bytes."""
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    atomic_write_bytes(path, buffer.getvalue())


def write_table(frame: pd.DataFrame, stem: Path) -> None:
    """stem.parquet and stem.csv."""
    stem = Path(stem)
    write_parquet(frame, stem.with_suffix(".parquet"))
    atomic_write_text(stem.with_suffix(".csv"), frame.to_csv(index=False))
