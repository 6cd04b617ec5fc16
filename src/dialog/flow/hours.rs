//! Business hours: a weekly schedule in a time zone, with closed dates.
//!
//! Evaluated on the `now` the caller passes in (never the clock), in the flow's own time zone,
//! so "09:00" means nine in the morning there whichever side of a DST change `now` falls on.
//! Time zones come from jiff's database, which falls back to a bundled copy of the IANA data
//! when the machine has no /usr/share/zoneinfo.

use std::time::SystemTime;

use serde::Deserialize;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Open on some weekdays from `start` to `end` (seconds after local midnight, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenRange {
    /// Bit `n` set: open on the weekday `n` days after Monday.
    days: u8,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    tz: TimeZone,
    open: Vec<OpenRange>,
    closed_dates: Vec<Date>,
}

impl Schedule {
    pub(crate) fn new(tz: TimeZone, open: Vec<OpenRange>, closed_dates: Vec<Date>) -> Self {
        Self {
            tz,
            open,
            closed_dates,
        }
    }

    /// Whether the business is open at `now`.
    pub(crate) fn is_open(&self, now: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(now) else {
            // Outside jiff's range (years beyond ±9999): no schedule can say it is open.
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        if self.closed_dates.contains(&local.date()) {
            return false;
        }
        let day_bit = 1u8 << local.weekday().to_monday_zero_offset();
        let secs = u32::from(local.hour().unsigned_abs()) * 3600
            + u32::from(local.minute().unsigned_abs()) * 60
            + u32::from(local.second().unsigned_abs());
        self.open
            .iter()
            .any(|r| r.days & day_bit != 0 && (r.start..r.end).contains(&secs))
    }
}

/// A department's `business_hours` as the API takes them (JSON): a flow's `[hours]` without
/// its `closed` outcome, `{"time_zone": "Europe/Berlin", "open": ["mon-fri 09:00-17:00"],
/// "closed_dates": ["2026-12-25"]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeeklyHours {
    time_zone: String,
    open: Vec<String>,
    #[serde(default)]
    closed_dates: Vec<String>,
}

/// Parses a department's business hours; an error names the field (`open[1]`) and the problem.
pub(crate) fn department_schedule(value: &serde_json::Value) -> Result<Schedule, (String, String)> {
    let hours = WeeklyHours::deserialize(value).map_err(|e| (String::new(), e.to_string()))?;
    let tz = time_zone(&hours.time_zone).map_err(|m| ("time_zone".to_string(), m))?;
    if hours.open.is_empty() {
        return Err(("open".into(), "lists no opening hours".into()));
    }
    let open = hours
        .open
        .iter()
        .enumerate()
        .map(|(i, r)| parse_range(r).map_err(|m| (format!("open[{i}]"), m)))
        .collect::<Result<_, _>>()?;
    let closed_dates = hours
        .closed_dates
        .iter()
        .enumerate()
        .map(|(i, d)| parse_date(d).map_err(|m| (format!("closed_dates[{i}]"), m)))
        .collect::<Result<_, _>>()?;
    Ok(Schedule::new(tz, open, closed_dates))
}

/// Look up an IANA time zone name.
pub(crate) fn time_zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db()
        .get(name)
        .map_err(|_| format!("unknown time zone \"{name}\""))
}

/// Parse a closed date, "2025-12-25".
pub(crate) fn parse_date(text: &str) -> Result<Date, String> {
    text.trim()
        .parse::<Date>()
        .map_err(|_| format!("\"{text}\" is not a date like \"2025-12-25\""))
}

/// Parse "mon-fri 09:00-17:00", "sat,sun 10:00-14:00", "daily 08:00-20:00".
/// A range ends after it starts; "24:00" is the end of the day. Overnight hours are two ranges.
pub(crate) fn parse_range(text: &str) -> Result<OpenRange, String> {
    let shape = || format!("\"{text}\" is not like \"mon-fri 09:00-17:00\"");
    let mut parts = text.split_whitespace();
    let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(shape());
    };
    let days = parse_days(days).ok_or_else(shape)?;
    let (start, end) = times.split_once('-').ok_or_else(shape)?;
    let start = parse_time(start).ok_or_else(shape)?;
    let end = parse_time(end).ok_or_else(shape)?;
    if end <= start {
        return Err(format!(
            "\"{text}\": the range must end after it starts (write overnight hours as two ranges)"
        ));
    }
    Ok(OpenRange { days, start, end })
}

fn day_index(name: &str) -> Option<usize> {
    DAYS.iter()
        .position(|(short, _)| name.eq_ignore_ascii_case(short))
}

fn parse_days(text: &str) -> Option<u8> {
    if text.eq_ignore_ascii_case("daily") {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day_index(from)?, day_index(to)?);
                if to < from {
                    return None;
                }
                for day in from..=to {
                    mask |= 1 << day;
                }
            }
            None => mask |= 1 << day_index(part)?,
        }
    }
    Some(mask)
}

/// "HH:MM" to seconds after midnight; "24:00" allowed as an end.
fn parse_time(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 3600),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(utc: &str) -> SystemTime {
        SystemTime::from(
            utc.parse::<jiff::Timestamp>()
                .expect("test timestamps are valid"),
        )
    }

    fn new_york_weekdays() -> Schedule {
        let tz = time_zone("America/New_York").expect("bundled tzdb has New York");
        let open = vec![parse_range("mon-fri 09:00-17:00").expect("valid range")];
        Schedule::new(
            tz,
            open,
            vec![parse_date("2025-12-25").expect("valid date")],
        )
    }

    #[test]
    fn same_utc_time_is_closed_before_and_open_after_spring_forward() {
        let s = new_york_weekdays();
        // 13:30 UTC is 08:30 EST on Friday 7 March, 09:30 EDT on Monday 10 March (DST began 9 March).
        assert!(!s.is_open(at("2025-03-07T13:30:00Z")));
        assert!(s.is_open(at("2025-03-10T13:30:00Z")));
        // And back in autumn: 09:30 EDT on Friday 31 October, 08:30 EST on Monday 3 November.
        assert!(s.is_open(at("2025-10-31T13:30:00Z")));
        assert!(!s.is_open(at("2025-11-03T13:30:00Z")));
    }

    #[test]
    fn edges_weekends_and_closed_dates() {
        let s = new_york_weekdays();
        assert!(s.is_open(at("2025-03-10T13:00:00Z")), "09:00 EDT opens");
        assert!(
            s.is_open(at("2025-03-10T20:59:59Z")),
            "16:59:59 EDT still open"
        );
        assert!(
            !s.is_open(at("2025-03-10T21:00:00Z")),
            "17:00 EDT is closed (end exclusive)"
        );
        assert!(!s.is_open(at("2025-03-08T15:00:00Z")), "Saturday");
        assert!(
            !s.is_open(at("2025-12-25T15:00:00Z")),
            "a Thursday, but a closed date"
        );
        assert!(s.is_open(at("2025-12-24T15:00:00Z")));
    }

    #[test]
    fn parses_day_lists_and_rejects_bad_ranges() {
        assert_eq!(
            parse_range("sat,sun 10:00-24:00").map(|r| r.days),
            Ok(0b110_0000)
        );
        assert_eq!(
            parse_range("mon,wed-thu 00:00-01:00").map(|r| r.days),
            Ok(0b1101)
        );
        assert_eq!(
            parse_range("daily 08:00-20:00").map(|r| (r.start, r.end)),
            Ok((8 * 3600, 20 * 3600))
        );
        for bad in [
            "mon-fri",
            "fri-mon 09:00-17:00",
            "mon 9:00-17:00",
            "mon 17:00-09:00",
            "mon 09:00-24:30",
            "xyz 09:00-10:00",
        ] {
            assert!(parse_range(bad).is_err(), "{bad} should be rejected");
        }
        assert!(time_zone("Mars/Olympus_Mons").is_err());
        assert!(parse_date("2025-13-01").is_err());
    }
}
