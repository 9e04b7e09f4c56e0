//! Local calendar of the administration: which day a poll belongs to and how much of an interval
//! falls into working hours. Pure: the time zone rules are compiled in (jiff's bundled tzdb),
//! so the same timestamps give the same days on every machine.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A day of the week in config order (`mon` … `sun`).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Time zone and working hours.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    tz_name: String,
    /// Working days, Monday first.
    days: [bool; 7],
    start: Time,
    end: Time,
}

/// A calendar setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// Unknown IANA time zone.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Berlin\")")]
    TimeZone(String),
    /// Not `HH:MM`.
    #[error("{0:?} is not a time such as \"07:30\"")]
    Time(String),
    /// Unknown day name.
    #[error("{0:?} is not one of mon, tue, wed, thu, fri, sat, sun")]
    Day(String),
    /// The end is not after the start.
    #[error("working hours must end after they start ({0} .. {1})")]
    Order(String, String),
}

impl Calendar {
    /// A calendar in `tz` (IANA name) with working `days` from `start` to `end` (`HH:MM`).
    ///
    /// # Errors
    /// [`CalendarError`] naming the bad value.
    pub fn new(tz: &str, days: &[String], start: &str, end: &str) -> Result<Self, CalendarError> {
        let zone = if tz.eq_ignore_ascii_case("UTC") {
            TimeZone::UTC
        } else {
            jiff::tz::db()
                .get(tz)
                .map_err(|_| CalendarError::TimeZone(tz.to_string()))?
        };
        let parse_time = |s: &str| -> Result<Time, CalendarError> {
            let (h, m) = s
                .split_once(':')
                .ok_or_else(|| CalendarError::Time(s.to_string()))?;
            let h: i8 = h.parse().map_err(|_| CalendarError::Time(s.to_string()))?;
            let m: i8 = m.parse().map_err(|_| CalendarError::Time(s.to_string()))?;
            if h == 24 && m == 0 {
                return Ok(Time::MAX);
            }
            Time::new(h, m, 0, 0).map_err(|_| CalendarError::Time(s.to_string()))
        };
        let (start_t, end_t) = (parse_time(start)?, parse_time(end)?);
        if end_t <= start_t {
            return Err(CalendarError::Order(start.to_string(), end.to_string()));
        }
        let mut set = [false; 7];
        for d in days {
            let i = DAY_NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(d))
                .ok_or_else(|| CalendarError::Day(d.clone()))?;
            set[i] = true;
        }
        Ok(Calendar {
            tz: zone,
            tz_name: tz.to_string(),
            days: set,
            start: start_t,
            end: end_t,
        })
    }

    /// UTC, Monday to Friday 07:00–18:00 (tests and the default when nothing is configured).
    pub fn utc_office_hours() -> Self {
        let days: Vec<String> = DAY_NAMES[..5].iter().map(|s| s.to_string()).collect();
        Calendar::new("UTC", &days, "07:00", "18:00").unwrap_or_else(|_| unreachable!())
    }

    /// The IANA name.
    pub fn tz_name(&self) -> &str {
        &self.tz_name
    }

    /// The local date and time of `ts_ms` (ms since the Unix epoch).
    pub fn zoned(&self, ts_ms: u64) -> jiff::Zoned {
        let ts = Timestamp::from_millisecond(i64::try_from(ts_ms).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        ts.to_zoned(self.tz.clone())
    }

    /// The local date of `ts_ms` (ms since the Unix epoch).
    pub fn date(&self, ts_ms: u64) -> Date {
        self.zoned_date(ts_ms)
    }

    fn zoned_date(&self, ts_ms: u64) -> Date {
        let ts = Timestamp::from_millisecond(i64::try_from(ts_ms).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        self.tz.to_datetime(ts).date()
    }

    /// ms since the Unix epoch of `date` at `time`, local; `None` out of range.
    fn at(&self, date: Date, time: Time) -> Option<u64> {
        let dt = date.to_datetime(time);
        let ts = self.tz.to_ambiguous_timestamp(dt).compatible().ok()?;
        u64::try_from(ts.as_millisecond()).ok()
    }

    /// The local day `[start, end)` of `date` in ms.
    pub fn day_bounds(&self, date: Date) -> Option<(u64, u64)> {
        let start = self.at(date, Time::midnight())?;
        let end = self.at(date.tomorrow().ok()?, Time::midnight())?;
        Some((start, end))
    }

    /// Splits `[from_ms, to_ms)` by local day and calls `f(day, ms)` with the part of each day
    /// that lies within working hours (days with no overlap are skipped).
    pub fn working_overlap(&self, from_ms: u64, to_ms: u64, mut f: impl FnMut(Date, u64)) {
        if to_ms <= from_ms {
            return;
        }
        let mut day = self.date(from_ms);
        let last = self.date(to_ms - 1);
        while day <= last {
            if self.days[weekday_index(day.weekday())] {
                let end_time = self.end;
                let ws = self.at(day, self.start);
                let we = if end_time == Time::MAX {
                    day.tomorrow()
                        .ok()
                        .and_then(|t| self.at(t, Time::midnight()))
                } else {
                    self.at(day, end_time)
                };
                if let (Some(ws), Some(we)) = (ws, we) {
                    let (a, b) = (from_ms.max(ws), to_ms.min(we));
                    if b > a {
                        f(day, b - a);
                    }
                }
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
    }
}

impl Calendar {
    /// As [`Calendar::working_overlap`], split further by local hour: `f(day, hour, ms)` with
    /// `hour` 0–23 the local hour the part lies in.
    pub fn working_overlap_hours(
        &self,
        from_ms: u64,
        to_ms: u64,
        mut f: impl FnMut(Date, u8, u64),
    ) {
        self.working_overlap(from_ms, to_ms, |day, _| {
            let Some((day_start, day_end)) = self.day_bounds(day) else {
                return;
            };
            // The working part of this day within [from_ms, to_ms).
            let (a, b) = (from_ms.max(day_start), to_ms.min(day_end));
            let mut t = a;
            while t < b {
                let ts = Timestamp::from_millisecond(i64::try_from(t).unwrap_or(i64::MAX))
                    .unwrap_or(Timestamp::MAX);
                let local = self.tz.to_datetime(ts);
                let hour = local.hour();
                let next_hour = Time::new(hour + 1, 0, 0, 0)
                    .ok()
                    .and_then(|time| self.at(day, time))
                    .unwrap_or(day_end);
                // A DST fold can put the next local hour behind `t`: go on by an hour.
                let next = if next_hour > t {
                    next_hour
                } else {
                    t + 3_600_000
                };
                let end = b.min(next);
                let mut working = 0;
                self.working_part(day, t, end, |ms| working += ms);
                if working > 0 {
                    f(day, u8::try_from(hour).unwrap_or(0), working);
                }
                t = end;
            }
        });
    }

    /// The part of `[from_ms, to_ms)` (within `day`) that lies in working hours.
    fn working_part(&self, day: Date, from_ms: u64, to_ms: u64, mut f: impl FnMut(u64)) {
        self.working_overlap(from_ms, to_ms, |d, ms| {
            if d == day {
                f(ms);
            }
        });
    }
}

fn weekday_index(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    fn berlin() -> Calendar {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Calendar::new("Europe/Berlin", &days, "07:00", "18:00").unwrap()
    }

    #[test]
    fn days_are_local_and_follow_daylight_saving() {
        let c = berlin();
        // 23:30 UTC on 31 Oct 2026 is already 1 Nov in Berlin (CET, UTC+1).
        assert_eq!(c.date(ms("2026-10-31T23:30:00Z")).to_string(), "2026-11-01");
        // In summer (CEST, UTC+2) 22:30 UTC is past midnight.
        assert_eq!(c.date(ms("2026-07-01T22:30:00Z")).to_string(), "2026-07-02");
        // The day DST ends has 25 hours.
        let (a, b) = c.day_bounds("2026-10-25".parse().unwrap()).unwrap();
        assert_eq!(b - a, 25 * 3_600_000);
    }

    #[test]
    fn working_time_splits_by_local_hour() {
        let c = berlin();
        let mut got = Vec::new();
        // Monday 2026-11-23 06:30 to 09:15 local (CET): 07–08, 08–09, 09:00–09:15.
        c.working_overlap_hours(
            ms("2026-11-23T05:30:00Z"),
            ms("2026-11-23T08:15:00Z"),
            |d, h, m| got.push((d.to_string(), h, m)),
        );
        let day = "2026-11-23".to_string();
        assert_eq!(
            got,
            [
                (day.clone(), 7, 3_600_000),
                (day.clone(), 8, 3_600_000),
                (day, 9, 900_000)
            ]
        );
        // Over a weekend and two evenings the hours add up to the day split.
        let (from, to) = (ms("2026-11-19T12:34:00Z"), ms("2026-11-24T09:01:00Z"));
        let mut by_hours = 0;
        c.working_overlap_hours(from, to, |_, h, m| {
            assert!((7..18).contains(&h), "hour {h}");
            by_hours += m;
        });
        let mut by_days = 0;
        c.working_overlap(from, to, |_, m| by_days += m);
        assert_eq!(by_hours, by_days);
    }

    #[test]
    fn only_working_hours_on_working_days_count() {
        let c = berlin();
        let mut got = Vec::new();
        // Friday 17:00 local to Monday 08:00 local: 1 h on Friday, 1 h on Monday.
        c.working_overlap(
            ms("2026-11-20T16:00:00Z"),
            ms("2026-11-23T07:00:00Z"),
            |d, m| got.push((d.to_string(), m)),
        );
        assert_eq!(
            got,
            [
                ("2026-11-20".to_string(), 3_600_000),
                ("2026-11-23".to_string(), 3_600_000)
            ]
        );
        let mut none = 0;
        c.working_overlap(
            ms("2026-11-21T08:00:00Z"),
            ms("2026-11-21T12:00:00Z"),
            |_, m| none += m,
        );
        assert_eq!(none, 0, "Saturday");
    }

    #[test]
    fn bad_settings_are_named() {
        let days = vec!["mon".to_string()];
        assert!(matches!(
            Calendar::new("Mars/Olympus", &days, "07:00", "18:00"),
            Err(CalendarError::TimeZone(_))
        ));
        assert!(matches!(
            Calendar::new("UTC", &days, "7", "18:00"),
            Err(CalendarError::Time(_))
        ));
        assert!(matches!(
            Calendar::new("UTC", &["funday".into()], "07:00", "18:00"),
            Err(CalendarError::Day(_))
        ));
        assert!(matches!(
            Calendar::new("UTC", &days, "18:00", "07:00"),
            Err(CalendarError::Order(..))
        ));
        let all_day = Calendar::new("UTC", &days, "00:00", "24:00").unwrap();
        let mut total = 0;
        all_day.working_overlap(
            ms("2026-11-23T00:00:00Z"),
            ms("2026-11-24T00:00:00Z"),
            |_, m| total += m,
        );
        assert_eq!(total, 86_400_000);
    }
}
