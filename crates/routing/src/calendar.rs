//! Opening hours and bank holidays: when a queue takes contacts.
//!
//! Councils publish their hours in UK local time, so schedules are written in
//! local time and every instant the engine is given (UTC) is converted here.
//! The UK summer-time rule is the domain's ([`uk_local_time`]), computed
//! rather than pulling in a time-zone database.
//!
//! Bank holidays are data (the GOV.UK list for England and Wales, copied into
//! the routing config), never fetched: the engine does no I/O.

use std::collections::BTreeMap;

use switchboard_domain::WorkingCalendar;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};

/// Minutes after local midnight, `0..=1440` (1440 is the end of the day).
pub type MinuteOfDay = u16;

/// Half-open local-time ranges `[start, end)` in which a queue is open.
pub type OpenRanges = Vec<(MinuteOfDay, MinuteOfDay)>;

/// The opening hours of one named schedule, in UK local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Monday first; an empty list means closed all day.
    pub days: [OpenRanges; 7],
    /// Hours on a bank holiday; empty means closed.
    pub bank_holidays: OpenRanges,
}

impl Schedule {
    /// Open every minute of every day, bank holidays included.
    pub fn always() -> Self {
        let all_day = vec![(0, 1440)];
        Schedule {
            days: std::array::from_fn(|_| all_day.clone()),
            bank_holidays: all_day,
        }
    }

    fn ranges_on(&self, weekday: Weekday, bank_holiday: bool) -> &OpenRanges {
        if bank_holiday {
            &self.bank_holidays
        } else {
            &self.days[weekday.num_days_from_monday() as usize]
        }
    }
}

/// Bank holidays and named opening-hours schedules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    /// The council's working days (the domain's, shared with case due dates).
    working: WorkingCalendar,
    schedules: BTreeMap<String, Schedule>,
}

impl Calendar {
    pub fn new(working: WorkingCalendar, schedules: BTreeMap<String, Schedule>) -> Self {
        Calendar { working, schedules }
    }

    /// The name of the bank holiday on this local date, if it is one.
    pub fn bank_holiday(&self, date: NaiveDate) -> Option<&str> {
        self.working.bank_holiday(date)
    }

    pub fn bank_holidays(&self) -> impl Iterator<Item = (NaiveDate, &str)> {
        self.working.bank_holidays()
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// Whether the named schedule is open at this instant. An unknown schedule
    /// is closed (config validation makes sure every queue names a real one).
    pub fn is_open(&self, schedule: &str, at: DateTime<Utc>) -> bool {
        let Some(schedule) = self.schedules.get(schedule) else {
            return false;
        };
        let local = uk_local_time(at);
        let bank_holiday = self.working.bank_holiday(local.date()).is_some();
        let minute = (local.hour() * 60 + local.minute()) as MinuteOfDay;
        schedule
            .ranges_on(local.weekday(), bank_holiday)
            .iter()
            .any(|&(start, end)| start <= minute && minute < end)
    }

    /// Whether a local date is a working day: Monday to Friday and not a bank
    /// holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.working.is_working_day(date)
    }

    /// Working days from the local date of `from` to the local date of `to`:
    /// 0 when both fall on the same day, 1 when `to` is on the next working
    /// day, and so on. Used for written-channel targets ("within 5 working
    /// days"). Counting stops after ten years, far beyond any target.
    pub fn working_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        const LIMIT_DAYS: u32 = 3660;
        let start = uk_local_time(from).date();
        let end = uk_local_time(to).date();
        let mut day = start;
        let mut working_days = 0;
        let mut steps = 0;
        while day < end && steps < LIMIT_DAYS {
            day += Duration::days(1);
            steps += 1;
            if self.is_working_day(day) {
                working_days += 1;
            }
        }
        working_days
    }
}

/// UK local wall-clock time (GMT, or BST in summer) for a UTC instant: the
/// domain's rule, shared with case due dates.
pub use switchboard_domain::calendar::uk_local_time;

/// Parses `HH:MM-HH:MM[, HH:MM-HH:MM…]` or `closed` into open ranges. `24:00`
/// is allowed as an end time.
pub fn parse_ranges(text: &str) -> Result<OpenRanges, String> {
    let text = text.trim();
    if text == "closed" {
        return Ok(Vec::new());
    }
    let mut ranges: OpenRanges = Vec::new();
    for part in text.split(',') {
        let (start, end) = part
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("expected `HH:MM-HH:MM` or `closed`, got `{}`", part.trim()))?;
        let start = parse_minute(start.trim())?;
        let end = parse_minute(end.trim())?;
        if start >= end {
            return Err(format!("`{}` must end after it starts", part.trim()));
        }
        if let Some(&(_, previous_end)) = ranges.last()
            && start < previous_end
        {
            return Err(format!(
                "`{}` overlaps or precedes the range before it",
                part.trim()
            ));
        }
        ranges.push((start, end));
    }
    Ok(ranges)
}

fn parse_minute(text: &str) -> Result<MinuteOfDay, String> {
    let invalid = || format!("`{text}` is not a time of day such as 08:30");
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(invalid());
    }
    Ok(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays() {
        // 2026: 29 March and 25 October.
        assert_eq!(uk_local_time(utc(2026, 3, 29, 0, 59)).hour(), 0);
        assert_eq!(uk_local_time(utc(2026, 3, 29, 1, 0)).hour(), 2);
        assert_eq!(uk_local_time(utc(2026, 10, 25, 0, 59)).hour(), 1);
        assert_eq!(uk_local_time(utc(2026, 10, 25, 1, 0)).hour(), 1);
        assert_eq!(uk_local_time(utc(2027, 1, 15, 9, 0)).hour(), 9);
        assert_eq!(uk_local_time(utc(2027, 7, 15, 9, 0)).hour(), 10);
    }

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(parse_ranges("08:30-17:00"), Ok(vec![(510, 1020)]));
        assert_eq!(parse_ranges("closed"), Ok(vec![]));
        assert_eq!(parse_ranges("00:00-24:00"), Ok(vec![(0, 1440)]));
        assert_eq!(
            parse_ranges("09:00-12:00, 13:00-16:00"),
            Ok(vec![(540, 720), (780, 960)])
        );
        for bad in [
            "17:00-08:30",
            "8:30-17:00",
            "08:30",
            "09:00-12:00,11:00-13:00",
            "24:30-25:00",
        ] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn working_days_skip_weekends_and_bank_holidays() {
        let holidays = BTreeMap::from([(
            NaiveDate::from_ymd_opt(2026, 5, 4).expect("date"),
            "Early May bank holiday".to_owned(),
        )]);
        let calendar = Calendar::new(WorkingCalendar::new(holidays), BTreeMap::new());
        // Friday 1 May to Tuesday 5 May: Monday 4 May is a bank holiday.
        assert_eq!(
            calendar.working_days_between(utc(2026, 5, 1, 10, 0), utc(2026, 5, 5, 10, 0)),
            1
        );
        assert_eq!(
            calendar.working_days_between(utc(2026, 5, 5, 8, 0), utc(2026, 5, 5, 16, 0)),
            0
        );
    }
}
