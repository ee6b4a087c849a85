#!/usr/bin/env python3
"""Independent check of a Delta table with DuckDB's delta extension (a reader other than delta-rs).

usage: delta_diff.py DELTA_PATH EXPECTED_PARQUET COLUMNS
Prints "<rows only in delta> <rows only in expected> <rows in delta> <distinct keys>" and exits 0.
COLUMNS is a comma-separated list; the first one is the key.
"""
import glob
import os
import sys

import duckdb
import duckdb_extension_delta

delta, expected, columns = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute(f"LOAD '{ext[0]}'")
cols = ", ".join(f'"{c}"' for c in columns)
d = f"SELECT {cols} FROM delta_scan('{delta}')"
e = f"SELECT {cols} FROM read_parquet('{expected}')"
only_delta = con.execute(f"SELECT count(*) FROM ({d} EXCEPT ALL {e})").fetchone()[0]
only_expected = con.execute(f"SELECT count(*) FROM ({e} EXCEPT ALL {d})").fetchone()[0]
rows, keys = con.execute(f'SELECT count(*), count(DISTINCT "{columns[0]}") FROM delta_scan(\'{delta}\')').fetchone()
print(only_delta, only_expected, rows, keys)
