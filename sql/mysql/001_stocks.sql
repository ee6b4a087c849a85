-- Source schema of the stock-market example: an ingest service writes quotes and trades into MySQL;
-- binlake captures both tables.
CREATE DATABASE IF NOT EXISTS stocks CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stocks.quotes (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  symbol     VARCHAR(12)     NOT NULL,
  bid        DECIMAL(18,6)   NOT NULL,
  ask        DECIMAL(18,6)   NOT NULL,
  bid_size   INT UNSIGNED    NOT NULL,
  ask_size   INT UNSIGNED    NOT NULL,
  venue      ENUM('XNAS','XNYS','ARCX','BATS','IEXG') NOT NULL,
  quoted_at  DATETIME(6)     NOT NULL,
  KEY quotes_symbol_time (symbol, quoted_at)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS stocks.trades (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  symbol      VARCHAR(12)     NOT NULL,
  price       DECIMAL(18,6)   NOT NULL,
  quantity    INT UNSIGNED    NOT NULL,
  side        ENUM('buy','sell') NOT NULL,
  conditions  SET('regular','odd_lot','extended_hours','correction') NOT NULL DEFAULT 'regular',
  traded_at   DATETIME(6)     NOT NULL,
  ingested_at TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY trades_symbol_time (symbol, traded_at)
) ENGINE=InnoDB;
