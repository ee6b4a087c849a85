-- Athena (engine v3) DDL for the lake tables, for when binlake's Glue registration ([lake.glue]) is off.
-- Replace s3://YOUR-BUCKET/lake with lake.root. Athena reads the schema and the partition columns
-- (lake.partitions, e.g. _traded_at_day) from the Delta log, so no PARTITIONED BY here.
CREATE DATABASE IF NOT EXISTS stocks;

CREATE EXTERNAL TABLE IF NOT EXISTS stocks.quotes
LOCATION 's3://YOUR-BUCKET/lake/stocks/quotes'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS stocks.trades
LOCATION 's3://YOUR-BUCKET/lake/stocks/trades'
TBLPROPERTIES ('table_type' = 'DELTA');
