-- Views over binlake's quality results (Athena engine v3 / Trino SQL). binlake registers the results table
-- as binlake_quality.results when [lake.glue] is set; every row is one evaluation of one expectation, on
-- one batch (level = 'row') or over the whole table (level = 'table'). docs/quality.md has the columns.

-- Where each expectation stands now: its latest evaluation.
CREATE OR REPLACE VIEW binlake_quality.latest_status AS
SELECT connector, table_name, expectation_id, expectation_type, level, severity, status,
       observed, expected, unexpected_count, unexpected_fraction, sample_keys, seq_min, seq_max,
       evaluated_at
FROM (
  SELECT r.*,
         row_number() OVER (PARTITION BY connector, table_name, expectation_id
                            ORDER BY evaluated_at DESC, seq_max DESC) AS rn
  FROM binlake_quality.results r
)
WHERE rn = 1;

-- Failures over time: per hour, how many evaluations of each expectation failed and how many rows they
-- flagged (a dashboard's trend line; filter on hour for a window).
CREATE OR REPLACE VIEW binlake_quality.failures_by_hour AS
SELECT connector, table_name, expectation_id, severity,
       date_trunc('hour', evaluated_at)            AS hour,
       count(*)                                    AS evaluations,
       count_if(status = 'fail')                   AS failed_evaluations,
       sum(if(status = 'fail', unexpected_count, 0)) AS unexpected_rows
FROM binlake_quality.results
GROUP BY connector, table_name, expectation_id, severity, date_trunc('hour', evaluated_at);
