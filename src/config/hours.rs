//! `active_hours`: when a table is expected to receive data (a stock exchange's session, for instance).
//! Freshness and anomaly expectations look only inside these windows, so a market that is closed at night
//! or at the weekend is not reported as a stopped feed.

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

/// `active_hours = { timezone = "America/New_York", days = ["mon", …], start = "09:30", end = "16:00" }`
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveHours {
    pub timezone: Tz,
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    timezone: String,
    /// default: Monday to Friday
    #[serde(default)]
    days: Option<Vec<String>>,
    start: String,
    end: String,
}

impl<'de> Deserialize<'de> for ActiveHours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawHours::deserialize(d)?;
        let timezone: Tz = raw.timezone.parse().map_err(|_| {
            D::Error::custom(format!(
                "active_hours.timezone `{}` is not an IANA time zone (e.g. America/New_York, Europe/London, UTC)",
                raw.timezone
            ))
        })?;
        let time = |key: &str, s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .map_err(|_| D::Error::custom(format!("active_hours.{key} `{s}` is not HH:MM")))
        };
        let (start, end) = (time("start", &raw.start)?, time("end", &raw.end)?);
        if start >= end {
            return Err(D::Error::custom(format!(
                "active_hours: start {} must be before end {} (windows over midnight are not supported)",
                raw.start, raw.end
            )));
        }
        let days = match raw.days {
            None => vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            Some(names) if names.is_empty() => {
                return Err(D::Error::custom("active_hours.days is empty"))
            }
            Some(names) => names
                .iter()
                .map(|n| {
                    n.parse::<Weekday>().map_err(|_| {
                        D::Error::custom(format!(
                            "active_hours.days: `{n}` is not a weekday (mon, tue, … sun)"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(ActiveHours {
            timezone,
            days,
            start,
            end,
        })
    }
}

impl ActiveHours {
    /// The start of the window `at` falls in (None: outside every window).
    pub fn window_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.timezone);
        let time = local.time();
        if !self.days.contains(&local.weekday()) || time < self.start || time >= self.end {
            return None;
        }
        // a start inside a DST gap does not exist locally: take the earliest valid reading
        let start = self
            .timezone
            .from_local_datetime(&local.date_naive().and_time(self.start))
            .earliest()?;
        Some(start.with_timezone(&Utc))
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.window_start(at).is_some()
    }

    /// In words, for results and alerts.
    pub fn describe(&self) -> String {
        let days: Vec<String> = self.days.iter().map(|d| d.to_string()).collect();
        format!(
            "{} {}–{} {}",
            days.join(","),
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.timezone.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nyse() -> ActiveHours {
        let v: toml::Value = toml::from_str(
            r#"h = { timezone = "America/New_York", start = "09:30", end = "16:00" }"#,
        )
        .unwrap();
        ActiveHours::deserialize(v["h"].clone()).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn market_hours_follow_the_exchange_clock_through_dst() {
        let h = nyse();
        // winter: EST = UTC-5, the session opens at 14:30 UTC
        assert_eq!(
            h.window_start(utc("2026-12-03T15:00:00Z")),
            Some(utc("2026-12-03T14:30:00Z"))
        );
        assert!(!h.contains(utc("2026-12-03T14:29:59Z")));
        assert!(!h.contains(utc("2026-12-03T21:00:00Z")));
        // summer: EDT = UTC-4, it opens at 13:30 UTC
        assert_eq!(
            h.window_start(utc("2026-07-01T13:30:00Z")),
            Some(utc("2026-07-01T13:30:00Z"))
        );
        // Saturday
        assert!(!h.contains(utc("2026-12-05T15:00:00Z")));
    }

    #[test]
    fn bad_hours_are_refused_in_words() {
        let parse = |s: &str| {
            let v: toml::Value = toml::from_str(&format!("h = {s}")).unwrap();
            ActiveHours::deserialize(v["h"].clone())
                .unwrap_err()
                .to_string()
        };
        assert!(
            parse(r#"{ timezone = "Mars/Olympus", start = "09:30", end = "16:00" }"#)
                .contains("IANA")
        );
        assert!(parse(r#"{ timezone = "UTC", start = "9h", end = "16:00" }"#).contains("HH:MM"));
        assert!(
            parse(r#"{ timezone = "UTC", start = "17:00", end = "16:00" }"#).contains("before end")
        );
        assert!(parse(
            r#"{ timezone = "UTC", days = ["someday"], start = "09:00", end = "16:00" }"#
        )
        .contains("weekday"));
    }
}
