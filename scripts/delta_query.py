#!/usr/bin/env python3
"""Runs one SQL query over a Delta table with DuckDB's delta extension (a reader other than delta-rs).

usage: delta_query.py DELTA_PATH SQL
The table is the view `t`; prints each result row as tab-separated values, one per line.
"""
import glob
import os
import sys

import duckdb
import duckdb_extension_delta

delta, sql = sys.argv[1], sys.argv[2]
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute(f"LOAD '{ext[0]}'")
con.execute(f"CREATE VIEW t AS SELECT * FROM delta_scan('{delta}')")
for row in con.execute(sql).fetchall():
    print("\t".join("NULL" if v is None else str(v) for v in row))
