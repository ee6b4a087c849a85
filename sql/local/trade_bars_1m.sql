-- One-minute OHLC bars over the local lake with `binlake query` (DataFusion SQL; the Athena version is
-- sql/athena/010_views.sql).
SELECT symbol,
       date_trunc('minute', traded_at)        AS minute,
       first_value(price ORDER BY traded_at)  AS open,
       max(price)                             AS high,
       min(price)                             AS low,
       last_value(price ORDER BY traded_at)   AS close,
       sum(quantity)                          AS volume,
       count(*)                               AS trades
FROM stocks.trades
GROUP BY 1, 2
ORDER BY 2 DESC, 1
LIMIT 12
