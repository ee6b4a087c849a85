-- Views the stock dashboards use (Athena engine v3 / Trino SQL). Timestamps are UTC wall clock as stored in
-- MySQL (docs/types.md). Deleted rows are already gone from the tables (hard deletes, the default).

-- Latest quote per symbol.
CREATE OR REPLACE VIEW stocks.latest_quote AS
SELECT symbol, bid, ask, (bid + ask) / 2 AS mid, bid_size, ask_size, venue, quoted_at
FROM (
  SELECT q.*, row_number() OVER (PARTITION BY symbol ORDER BY quoted_at DESC, id DESC) AS rn
  FROM stocks.quotes q
)
WHERE rn = 1;

-- One-minute OHLC bars and trade counts. Filter on trade_date (the partition column) so Athena reads only
-- those days' files.
CREATE OR REPLACE VIEW stocks.trade_bars_1m AS
SELECT symbol,
       _traded_at_day                  AS trade_date,
       date_trunc('minute', traded_at) AS minute,
       min_by(price, traded_at)        AS open,
       max(price)                      AS high,
       min(price)                      AS low,
       max_by(price, traded_at)        AS close,
       sum(quantity)                   AS volume,
       count(*)                        AS trades
FROM stocks.trades
GROUP BY 1, 2, 3;

-- Daily volume and notional per symbol.
CREATE OR REPLACE VIEW stocks.daily_volume AS
SELECT symbol,
       _traded_at_day          AS trade_date,   -- partition column: = CAST(traded_at AS date)
       sum(quantity)           AS volume,
       sum(price * quantity)   AS notional,
       count(*)                AS trades
FROM stocks.trades
GROUP BY 1, 2;

-- Freshness: how far the lake is behind MySQL, per table (binlake's metadata columns).
CREATE OR REPLACE VIEW stocks.freshness AS
SELECT 'quotes' AS table_name, max(_source_ts) AS last_source_commit, max(_ingested_at) AS last_ingested FROM stocks.quotes
UNION ALL
SELECT 'trades', max(_source_ts), max(_ingested_at) FROM stocks.trades;
