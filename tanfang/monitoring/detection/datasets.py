"""The real meter data of ``../shared/data`` (its README), loaded as meters and readings.

- DAIAD (Alicante, Spain): 92 households' cumulative water registers in litres, about hourly,
  local time Europe/Madrid (the autumn's repeated hour is read as its first occurrence).
- Liu 2018: one single-occupant house, half-hourly kWh of four circuits (kept apart, so the
  evaluation can freeze all but the fridge); the naive timestamps have no DST jump, so they
  are read as UTC and the home's time zone is UTC (its routine stays at the right hours).
- AMPds2: one house's one-minute gas (furnace) and water registers, UTC epoch seconds.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tanfang.monitoring.detection.tables import MeterTable, Readings


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


@dataclass
class WaterData:
    meters: MeterTable
    readings: Readings  # cumulative register, litres


def load_daiad(data_dir: Path) -> WaterData:
    path = data_dir / "daiad-water" / "swm_trialA.zip"
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".csv"))
        raw = archive.read(name)
    frame = pl.read_csv(
        io.BytesIO(raw),
        separator=";",
        new_columns=["meter_id", "local", "value", "diff"],
        schema_overrides={"value": pl.Float64, "diff": pl.Float64},
    )
    frame = frame.with_columns(
        pl.col("local")
        .str.strptime(pl.Datetime("us"), "%d/%m/%Y %H:%M:%S")
        .dt.replace_time_zone("Europe/Madrid", ambiguous="earliest", non_existent="null")
        .dt.epoch("s")
        .alias("ts")
    ).drop_nulls("ts")
    ids = sorted(frame["meter_id"].unique().to_list())
    meters = MeterTable.build(
        [
            {
                "meter_id": m,
                "elder_id": f"H{i:03d}",
                "utility": "water",
                "register": "cumulative",
                "unit": "L",
                "tz": "Europe/Madrid",
            }
            for i, m in enumerate(ids)
        ]
    )
    index = pl.DataFrame({"meter_id": ids, "row": np.arange(len(ids), dtype=np.int32)})
    joined = frame.join(index, on="meter_id").sort("row", "ts")
    return WaterData(
        meters,
        Readings(
            joined["row"].to_numpy(),
            joined["ts"].to_numpy().astype(np.int64),
            joined["value"].to_numpy().astype(np.float64),
        ),
    )


@dataclass
class ElectricityData:
    ts: np.ndarray  # end of each half hour, epoch s
    circuits: dict[str, np.ndarray]  # kWh per half hour

    @property
    def total(self) -> np.ndarray:
        return np.sum(list(self.circuits.values()), axis=0)


def load_liu(data_dir: Path) -> ElectricityData:
    import pyreadr

    table = pyreadr.read_r(
        str(data_dir / "liu2018-electricity" / "ew.RData"), output_format="polars"
    )
    frame = table["ew"]
    stamps = (
        frame["Timestamp"]
        .cast(pl.String)
        .str.strptime(pl.Datetime("us"), "%m/%d/%Y %H:%M")
        .dt.replace_time_zone("UTC")
        .dt.epoch("s")
        .to_numpy()
        .astype(np.int64)
    )
    circuits = {
        c: frame[c].to_numpy().astype(np.float64) for c in frame.columns if c != "Timestamp"
    }
    # The stamp is the start of the half hour; a reading is stamped at the end of its interval.
    return ElectricityData(stamps + 1800, circuits)


def liu_meter(status: str = "") -> dict[str, object]:
    return {
        "meter_id": "liu-house",
        "elder_id": "L1",
        "utility": "electricity",
        "register": "interval",
        "unit": "kWh",
        "interval_minutes": 30,
        "tz": "UTC",
        "status": status,
    }


def load_ampds(data_dir: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts, counter) of ``NaturalGas_FRG`` or ``Water_WHW``, one row a minute, litres."""
    parts = [pl.read_csv(data_dir / "ampds2" / f"{what}-{i}.csv") for i in (4, 5)]
    frame = pl.concat(parts).sort("unix_ts")
    return frame["unix_ts"].to_numpy().astype(np.int64), frame["counter"].to_numpy()
