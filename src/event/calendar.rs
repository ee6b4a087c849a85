//! Calendar arithmetic and temporal rendering shared by decoding, the envelope and the lake: days since
//! the Unix epoch by `chrono`, and ISO-8601 text for MySQL's temporal values (zero dates kept as stored).

use super::Value;
use chrono::{Datelike, NaiveDate};

/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_FROM_CE: i64 = 719_163;

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` for a date that does not exist (month or
/// day 0, or 30 February, which MySQL's ALLOW_INVALID_DATES accepts).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    Some(date.num_days_from_ce() as i64 - UNIX_EPOCH_FROM_CE)
}

/// The date `days` after 1970-01-01, as (year, month, day); clamped to the range chrono represents
/// (far beyond any MySQL value).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let from_ce = (days + UNIX_EPOCH_FROM_CE).clamp(
        NaiveDate::MIN.num_days_from_ce() as i64,
        NaiveDate::MAX.num_days_from_ce() as i64,
    );
    let date = NaiveDate::from_num_days_from_ce_opt(from_ce as i32).expect("clamped into range");
    (date.year() as i64, date.month(), date.day())
}

/// Microseconds since the epoch of a DATETIME read as UTC, or of a TIMESTAMP; `None` for zero and
/// invalid values (and for other types).
pub fn epoch_micros(v: &Value) -> Option<i64> {
    match *v {
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => {
            let days = days_from_civil(year as i64, month as i64, day as i64)?;
            let secs = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64;
            Some(secs * 1_000_000 + micros as i64)
        }
        Value::Timestamp { secs: 0, micros: 0 } => None,
        Value::Timestamp { secs, micros } => Some(secs * 1_000_000 + micros as i64),
        _ => None,
    }
}

/// Wall-clock time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `.ffffff` when there are microseconds, nothing otherwise.
struct Frac(u32);

impl std::fmt::Display for Frac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            Ok(())
        } else {
            write!(f, ".{:06}", self.0)
        }
    }
}

/// ISO-8601 text for temporal values, written straight into a formatter (no intermediate string: the
/// envelope renders one per DATETIME of every event); zero dates keep their zeros (see docs/types.md).
pub struct Temporal<'a>(pub &'a Value);

impl std::fmt::Display for Temporal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self.0 {
            Value::Date { year, month, day } => write!(f, "{year:04}-{month:02}-{day:02}"),
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => write!(
                f,
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{}",
                Frac(micros)
            ),
            Value::Timestamp { secs: 0, micros: 0 } => f.write_str("0000-00-00T00:00:00Z"),
            Value::Timestamp { secs, micros } => {
                let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
                let t = secs.rem_euclid(86_400);
                write!(
                    f,
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{}Z",
                    t / 3600,
                    t / 60 % 60,
                    t % 60,
                    Frac(micros)
                )
            }
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => write!(
                f,
                "{}{hours:02}:{minutes:02}:{seconds:02}{}",
                if negative { "-" } else { "" },
                Frac(micros)
            ),
            _ => Ok(()),
        }
    }
}

/// `Temporal` as a string.
pub fn render_temporal(v: &Value) -> String {
    Temporal(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2038, 1, 19),
            (1, 1, 1),
            (9999, 12, 31),
            (2000, 2, 29),
        ] {
            let days = days_from_civil(y, m as i64, d as i64).unwrap();
            assert_eq!(civil_from_days(days), (y, m, d));
        }
        assert_eq!(days_from_civil(1970, 1, 2), Some(1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2024, 2, 30), None);
        assert_eq!(days_from_civil(2024, 0, 10), None);
    }

    #[test]
    fn temporal_rendering() {
        assert_eq!(
            render_temporal(&Value::Date {
                year: 0,
                month: 0,
                day: 0
            }),
            "0000-00-00"
        );
        assert_eq!(
            render_temporal(&Value::Timestamp {
                secs: 1_700_000_000,
                micros: 120
            }),
            "2023-11-14T22:13:20.000120Z"
        );
        assert_eq!(
            render_temporal(&Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0
            }),
            "-838:59:59"
        );
    }
}
