//! Times as people read them: in this machine's time zone (or UTC with
//! `--utc`), with the day spelled out where it changes. Line mode, the
//! transcript and the chat screen all use [`LocalTime`]; `--json` keeps
//! RFC 3339 UTC times (`format_rfc3339`).

use jiff::Timestamp;
use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;

/// Local or UTC time for display.
#[derive(Debug, Clone)]
pub struct LocalTime {
    tz: TimeZone,
}

impl LocalTime {
    /// `new(false)` uses the system zone (UTC if it cannot be determined);
    /// `new(true)` keeps UTC.
    #[must_use]
    pub fn new(utc: bool) -> Self {
        let tz = if utc {
            TimeZone::UTC
        } else {
            TimeZone::try_system().unwrap_or(TimeZone::UTC)
        };
        Self { tz }
    }

    /// UTC.
    #[must_use]
    pub fn utc() -> Self {
        Self { tz: TimeZone::UTC }
    }

    /// A fixed zone, for tests (e.g. `TimeZone::fixed(offset)`).
    #[must_use]
    pub fn with_zone(tz: TimeZone) -> Self {
        Self { tz }
    }

    /// The civil date and time of `ms` (ms since the Unix epoch) in this
    /// zone; times past what jiff represents are shown as its maximum.
    fn civil(&self, ms: u64) -> DateTime {
        let ts = i64::try_from(ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .unwrap_or(Timestamp::MAX);
        self.tz.to_datetime(ts)
    }

    /// "14:05": hours and minutes of `ms` (ms since the Unix epoch).
    #[must_use]
    pub fn hhmm(&self, ms: u64) -> String {
        let dt = self.civil(ms);
        format!("{:02}:{:02}", dt.hour(), dt.minute())
    }

    /// "Thursday 3 December 2026": the day of `ms` (ms since the Unix epoch).
    #[must_use]
    pub fn date(&self, ms: u64) -> String {
        let d = self.civil(ms).date();
        let weekday = match d.weekday() {
            Weekday::Monday => "Monday",
            Weekday::Tuesday => "Tuesday",
            Weekday::Wednesday => "Wednesday",
            Weekday::Thursday => "Thursday",
            Weekday::Friday => "Friday",
            Weekday::Saturday => "Saturday",
            Weekday::Sunday => "Sunday",
        };
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let month = usize::try_from(d.month() - 1)
            .ok()
            .and_then(|m| MONTHS.get(m))
            .unwrap_or(&"?");
        format!("{weekday} {} {month} {}", d.day(), d.year())
    }

    /// Whether two times fall on the same day in this zone.
    #[must_use]
    pub fn same_day(&self, a_ms: u64, b_ms: u64) -> bool {
        self.civil(a_ms).date() == self.civil(b_ms).date()
    }
}
