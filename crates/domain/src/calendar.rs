//! Working days for case due dates: Monday to Friday, less the bank
//! holidays. A case due in "5 working days" is due at the end of the fifth
//! working day after it was opened, in UK local time, because that is how
//! councils publish targets and how residents read them.
//!
//! Bank holidays are data: the `[calendar]` table of the routing config
//! (`seeds/routing.toml`), the GOV.UK list copied there. They are read from
//! that one table so a council keeps a single list for opening hours and due
//! dates alike.
//!
//! UK summer time follows a short fixed rule (the Summer Time Order 2002:
//! from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday
//! of October), so it is computed here rather than pulling in a time-zone
//! database; routing uses the same rule for opening hours.

use std::collections::BTreeMap;

use serde::Deserialize;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

/// The one time zone councils here work in; the key exists so a config
/// states it rather than leaving readers to assume.
const TIME_ZONE: &str = "Europe/London";

/// The repo's routing config, whose `[calendar]` is the shipped bank holiday list.
const EMBEDDED_ROUTING: &str = include_str!("../../../seeds/routing.toml");

/// A mistake in the `[calendar]` table, with the dotted key at fault, e.g.
/// `calendar.bank_holidays[3].date: "2026-13-01" is not a date such as 2026-12-25`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_calendar_error(.key, .problem))]
pub struct CalendarError {
    /// Dotted path with `[i]` for list items; `None` when the document as a
    /// whole is not valid TOML.
    pub key: Option<String>,
    pub problem: String,
}

fn display_calendar_error(key: &Option<String>, problem: &str) -> String {
    match key {
        Some(key) => format!("{key}: {problem}"),
        None => problem.to_owned(),
    }
}

impl CalendarError {
    fn at(key: impl Into<String>, problem: impl Into<String>) -> Self {
        CalendarError {
            key: Some(key.into()),
            problem: problem.into(),
        }
    }
}

/// The working-day calendar: which local dates are working days.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkingCalendar {
    bank_holidays: BTreeMap<NaiveDate, String>,
}

/// The `[calendar]` table as a config file states it: the time zone and the
/// bank holidays as (date, name) pairs. The routing config deserialises its
/// `[calendar]` into this too, so both readers agree on every rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarTable {
    pub time_zone: String,
    pub bank_holidays: Vec<BankHolidayEntry>,
}

/// One bank holiday as written: a date `YYYY-MM-DD` and its name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankHolidayEntry {
    pub date: String,
    pub name: String,
}

impl CalendarTable {
    /// The working calendar it states: the time zone must be
    /// "Europe/London"; each date a date, each name not empty, no date
    /// twice. Errors name the key, e.g. `calendar.bank_holidays[3].date`.
    pub fn validate(&self) -> Result<WorkingCalendar, CalendarError> {
        if self.time_zone != TIME_ZONE {
            return Err(CalendarError::at(
                "calendar.time_zone",
                "only Europe/London is supported (UK councils, UK summer time)",
            ));
        }
        let mut bank_holidays = BTreeMap::new();
        for (index, holiday) in self.bank_holidays.iter().enumerate() {
            let key = format!("calendar.bank_holidays[{index}]");
            let date = NaiveDate::parse_from_str(&holiday.date, "%Y-%m-%d").map_err(|_| {
                CalendarError::at(
                    format!("{key}.date"),
                    format!("\"{}\" is not a date such as 2026-12-25", holiday.date),
                )
            })?;
            let name = holiday.name.trim();
            if name.is_empty() {
                return Err(CalendarError::at(format!("{key}.name"), "must not be empty"));
            }
            if bank_holidays.insert(date, name.to_owned()).is_some() {
                return Err(CalendarError::at(
                    format!("{key}.date"),
                    format!("{date} is listed twice"),
                ));
            }
        }
        Ok(WorkingCalendar { bank_holidays })
    }
}

impl WorkingCalendar {
    /// A calendar with these bank holidays (date, name).
    pub fn new(bank_holidays: impl IntoIterator<Item = (NaiveDate, String)>) -> Self {
        WorkingCalendar {
            bank_holidays: bank_holidays.into_iter().collect(),
        }
    }

    /// Reads the `[calendar]` table of a TOML document (the routing config),
    /// ignoring its other tables, and validates it with
    /// [`CalendarTable::validate`].
    pub fn from_toml(text: &str) -> Result<WorkingCalendar, CalendarError> {
        #[derive(Deserialize)]
        struct Document {
            calendar: CalendarTable,
        }
        let table = text.parse::<toml::Table>().map_err(|error| {
            let line = error
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            let at = line.map(|line| format!(" at line {line}")).unwrap_or_default();
            CalendarError {
                key: None,
                problem: format!("not valid toml{at}: {}", error.message().trim_end()),
            }
        })?;
        // As the routing config does: serde names the path of a missing,
        // unknown or mistyped key.
        let document: Document =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                CalendarError {
                    key: (path != ".").then_some(path),
                    problem: message.lines().next().unwrap_or_default().trim_end().to_owned(),
                }
            })?;
        document.calendar.validate()
    }

    /// The calendar of the routing config shipped in the repo's `seeds/`.
    /// A test keeps it valid.
    pub fn embedded() -> Result<WorkingCalendar, CalendarError> {
        Self::from_toml(EMBEDDED_ROUTING)
    }

    /// The name of the bank holiday on this local date, if it is one.
    pub fn bank_holiday(&self, date: NaiveDate) -> Option<&str> {
        self.bank_holidays.get(&date).map(String::as_str)
    }

    pub fn bank_holidays(&self) -> impl Iterator<Item = (NaiveDate, &str)> {
        self.bank_holidays
            .iter()
            .map(|(date, name)| (*date, name.as_str()))
    }

    /// Monday to Friday and not a bank holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.bank_holidays.contains_key(&date)
    }

    /// When something started at `start` and due in `working_days` is due:
    /// the end (23:59:59 UK local time) of the Nth working day after the
    /// local date of `start`. Whatever time of day the case was opened, the
    /// day itself does not count, so a case opened on a Friday evening with
    /// one working day is due at the end of Monday (Tuesday if Monday is a
    /// bank holiday). 0 means the end of the start's own local date, working
    /// day or not. Targets far beyond any calendar saturate at the latest
    /// time chrono can represent.
    pub fn due_at(&self, start: DateTime<Utc>, working_days: u32) -> DateTime<Utc> {
        let start_date = uk_local_time(start).date();
        self.nth_working_day_after(start_date, working_days)
            .and_then(end_of_uk_day)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The `n`th working day after `date` (`date` itself for 0), or `None`
    /// past the end of chrono's calendar.
    fn nth_working_day_after(&self, date: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut day = date;
        let mut remaining = n;
        // After the last bank holiday every week has exactly five working
        // days, so whole weeks are skipped rather than walked: `due_at` stays
        // cheap for any `n`.
        let last_holiday = self.bank_holidays.keys().next_back().copied();
        while remaining > 0 {
            let past_holidays = last_holiday.is_none_or(|last| day >= last);
            if past_holidays && remaining > 5 {
                let weeks = (remaining - 1) / 5;
                day = day.checked_add_days(Days::new(u64::from(weeks) * 7))?;
                remaining -= weeks * 5;
                continue;
            }
            day = day.succ_opt()?;
            if self.is_working_day(day) {
                remaining -= 1;
            }
        }
        Some(day)
    }
}

/// The last Sunday of a month at 01:00 UTC: when UK clocks change.
fn last_sunday_0100_utc(year: i32, month: u32) -> Option<NaiveDateTime> {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    let last_day = first_of_next.pred_opt()?;
    let back = last_day.weekday().num_days_from_sunday();
    let sunday = last_day.checked_sub_days(Days::new(u64::from(back)))?;
    sunday.and_hms_opt(1, 0, 0)
}

fn is_uk_summer_time(utc: NaiveDateTime) -> bool {
    match (
        last_sunday_0100_utc(utc.year(), 3),
        last_sunday_0100_utc(utc.year(), 10),
    ) {
        (Some(start), Some(end)) => utc >= start && utc < end,
        _ => false,
    }
}

/// UK local wall-clock time (GMT, or BST in summer) for a UTC instant.
pub fn uk_local_time(at: DateTime<Utc>) -> NaiveDateTime {
    let utc = at.naive_utc();
    if is_uk_summer_time(utc) {
        utc.checked_add_signed(Duration::hours(1)).unwrap_or(utc)
    } else {
        utc
    }
}

/// 23:59:59 UK local time on `date`, as a UTC instant. Clocks change only
/// between 01:00 and 02:00, so late evening is never skipped or repeated and
/// has exactly one UTC instant.
fn end_of_uk_day(date: NaiveDate) -> Option<DateTime<Utc>> {
    let local = date.and_time(NaiveTime::from_hms_opt(23, 59, 59)?);
    let in_summer = local.checked_sub_signed(Duration::hours(1))?;
    let utc = if is_uk_summer_time(in_summer) {
        in_summer
    } else {
        local
    };
    debug_assert_eq!(uk_local_time(utc.and_utc()), local);
    Some(utc.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    fn end_utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 59, 59)
            .single()
            .expect("valid time")
    }

    fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).expect("valid date")
    }

    fn shipped() -> WorkingCalendar {
        WorkingCalendar::embedded().unwrap_or_else(|e| panic!("seeds/routing.toml: {e}"))
    }

    const MINIMAL: &str = r#"
[engine]
named_agent_wait_seconds = 60

[calendar]
time_zone = "Europe/London"
bank_holidays = [
    { date = "2026-12-25", name = "Christmas Day" },
    { date = "2026-12-28", name = "Boxing Day (substitute day)" },
]

[queues.anything]
name = "Other tables are not this module's business"
"#;

    #[test]
    fn the_shipped_calendar_loads() {
        let calendar = shipped();
        assert_eq!(calendar.bank_holiday(date(2026, 12, 25)), Some("Christmas Day"));
        assert_eq!(
            calendar.bank_holiday(date(2026, 12, 28)),
            Some("Boxing Day (substitute day)")
        );
        assert_eq!(calendar.bank_holiday(date(2026, 12, 24)), None);
        assert!(calendar.bank_holidays().count() >= 16);
    }

    #[test]
    fn working_days_are_weekdays_that_are_not_bank_holidays() {
        let calendar = WorkingCalendar::from_toml(MINIMAL).expect("valid");
        assert!(calendar.is_working_day(date(2026, 12, 24))); // Thursday
        assert!(!calendar.is_working_day(date(2026, 12, 25))); // Christmas, Friday
        assert!(!calendar.is_working_day(date(2026, 12, 26))); // Saturday
        assert!(!calendar.is_working_day(date(2026, 12, 27))); // Sunday
        assert!(!calendar.is_working_day(date(2026, 12, 28))); // substitute Monday
        assert!(calendar.is_working_day(date(2026, 12, 29)));
    }

    #[test]
    fn due_dates_step_over_christmas_2026() {
        let calendar = shipped();
        // Opened on Christmas Eve: Friday 25th and Monday 28th are bank holidays.
        let christmas_eve = utc(2026, 12, 24, 15, 0);
        assert_eq!(calendar.due_at(christmas_eve, 0), end_utc(2026, 12, 24, 23));
        assert_eq!(calendar.due_at(christmas_eve, 1), end_utc(2026, 12, 29, 23));
        assert_eq!(calendar.due_at(christmas_eve, 2), end_utc(2026, 12, 30, 23));
        assert_eq!(calendar.due_at(christmas_eve, 3), end_utc(2026, 12, 31, 23));
        // New Year's Day 2027 is a Friday bank holiday too.
        assert_eq!(calendar.due_at(christmas_eve, 4), end_utc(2027, 1, 4, 23));
        // Opened on Christmas Day itself, the day does not count either way.
        assert_eq!(
            calendar.due_at(utc(2026, 12, 25, 10, 0), 1),
            end_utc(2026, 12, 29, 23)
        );
    }

    #[test]
    fn friday_evening_is_due_on_monday_or_after_a_bank_holiday_monday() {
        let calendar = shipped();
        // Friday 12 June 2026, 19:30 BST.
        assert_eq!(
            calendar.due_at(utc(2026, 6, 12, 18, 30), 1),
            end_utc(2026, 6, 15, 22)
        );
        // Friday 1 May 2026; Monday 4 May is the early May bank holiday.
        assert_eq!(
            calendar.due_at(utc(2026, 5, 1, 18, 30), 1),
            end_utc(2026, 5, 5, 22)
        );
    }

    #[test]
    fn saturday_starts_count_from_the_next_working_day() {
        let calendar = shipped();
        let saturday = utc(2026, 6, 13, 11, 0);
        assert_eq!(calendar.due_at(saturday, 0), end_utc(2026, 6, 13, 22));
        assert_eq!(calendar.due_at(saturday, 1), end_utc(2026, 6, 15, 22));
        assert_eq!(calendar.due_at(saturday, 5), end_utc(2026, 6, 19, 22));
        assert_eq!(calendar.due_at(saturday, 6), end_utc(2026, 6, 22, 22));
    }

    #[test]
    fn due_times_follow_summer_time_changes() {
        let calendar = shipped();
        // Clocks go forward on Sunday 29 March 2026: opened in GMT, due in BST.
        let friday = utc(2026, 3, 27, 12, 0);
        assert_eq!(calendar.due_at(friday, 0), end_utc(2026, 3, 27, 23));
        assert_eq!(calendar.due_at(friday, 1), end_utc(2026, 3, 30, 22));
        // Clocks go back on Sunday 25 October 2026: opened in BST, due in GMT.
        let friday = utc(2026, 10, 23, 12, 0);
        assert_eq!(calendar.due_at(friday, 0), end_utc(2026, 10, 23, 22));
        assert_eq!(calendar.due_at(friday, 1), end_utc(2026, 10, 26, 23));
        // 23:30 UTC on 30 June is already 1 July in the UK.
        assert_eq!(
            calendar.due_at(utc(2026, 6, 30, 23, 30), 0),
            end_utc(2026, 7, 1, 22)
        );
        // 23:30 UTC on 30 December is still 30 December (GMT).
        assert_eq!(
            calendar.due_at(utc(2026, 12, 30, 23, 30), 0),
            end_utc(2026, 12, 30, 23)
        );
    }

    #[test]
    fn long_targets_stay_exact_and_huge_ones_saturate() {
        let calendar = shipped();
        let start = utc(2026, 1, 5, 9, 0); // Monday
        // 260 working days walked one by one against the skipping shortcut.
        let mut day = date(2026, 1, 5);
        for _ in 0..260 {
            day = day.succ_opt().expect("date");
            while !calendar.is_working_day(day) {
                day = day.succ_opt().expect("date");
            }
        }
        assert_eq!(uk_local_time(calendar.due_at(start, 260)).date(), day);
        assert_eq!(calendar.due_at(start, u32::MAX), DateTime::<Utc>::MAX_UTC);
        let no_holidays = WorkingCalendar::default();
        assert_eq!(
            uk_local_time(no_holidays.due_at(start, 10)).date(),
            date(2026, 1, 19)
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "\"2026-12-28\"",
                "\"2026-13-01\"",
                "calendar.bank_holidays[1].date",
            ),
            (
                "\"2026-12-28\"",
                "\"28/12/2026\"",
                "calendar.bank_holidays[1].date",
            ),
            (
                "\"2026-12-28\"",
                "\"2026-12-25\"",
                "calendar.bank_holidays[1].date",
            ),
            (
                "name = \"Christmas Day\"",
                "name = \" \"",
                "calendar.bank_holidays[0].name",
            ),
            (
                "name = \"Christmas Day\"",
                "title = \"x\"",
                "calendar.bank_holidays[0].title",
            ),
            // A missing key is named by the table that lacks it.
            (", name = \"Christmas Day\"", "", "calendar.bank_holidays[0]"),
            ("\"Europe/London\"", "\"UTC\"", "calendar.time_zone"),
            ("time_zone = \"Europe/London\"\n", "", "calendar"),
            (
                "time_zone = \"Europe/London\"",
                "time_zone = \"Europe/London\"\nzone = 1",
                "calendar.zone",
            ),
        ];
        for (from, to, key) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            assert_ne!(text, MINIMAL, "{from} not found");
            let error = WorkingCalendar::from_toml(&text).expect_err(to);
            assert_eq!(error.key.as_deref(), Some(*key), "{to}: {error}");
        }
        let error = WorkingCalendar::from_toml(&MINIMAL.replacen("\"2026-12-28\"", "\"2026-13-01\"", 1))
            .expect_err("bad date");
        assert_eq!(
            error.to_string(),
            "calendar.bank_holidays[1].date: \"2026-13-01\" is not a date such as 2026-12-25"
        );
        let error =
            WorkingCalendar::from_toml("[calendar]\ntime_zone = \"Europe/London\"\nbank_holidays = \"none\"")
                .expect_err("not a list");
        assert_eq!(error.key.as_deref(), Some("calendar.bank_holidays"));
        let error =
            WorkingCalendar::from_toml("[calendar]\ntime_zone = \"Europe/London\"").expect_err("no list");
        assert_eq!(error.key.as_deref(), Some("calendar"));
        assert_eq!(error.problem, "missing field `bank_holidays`");
        let error = WorkingCalendar::from_toml(&MINIMAL.replacen("[calendar]", "[calendar_]", 1))
            .expect_err("no [calendar]");
        assert_eq!(error.to_string(), "missing field `calendar`");
        let error = WorkingCalendar::from_toml("calendar = 3").expect_err("not a table");
        assert_eq!(error.key.as_deref(), Some("calendar"));
        let error =
            WorkingCalendar::from_toml("[calendar]\ntime_zone = \"Europe/London\"\nbank_holidays = [1]")
                .expect_err("not a table");
        assert_eq!(error.key.as_deref(), Some("calendar.bank_holidays[0]"));
        let error = WorkingCalendar::from_toml("[calendar\n").expect_err("not toml");
        assert_eq!(error.key, None);
        assert!(
            error.to_string().starts_with("not valid toml at line 1"),
            "{error}"
        );
    }

    #[test]
    fn local_time_matches_the_summer_time_rule() {
        // 2026: 29 March and 25 October.
        assert_eq!(uk_local_time(utc(2026, 3, 29, 0, 59)).hour(), 0);
        assert_eq!(uk_local_time(utc(2026, 3, 29, 1, 0)).hour(), 2);
        assert_eq!(uk_local_time(utc(2026, 10, 25, 0, 59)).hour(), 1);
        assert_eq!(uk_local_time(utc(2026, 10, 25, 1, 0)).hour(), 1);
        assert_eq!(end_of_uk_day(date(2026, 3, 29)), Some(end_utc(2026, 3, 29, 22)));
        assert_eq!(end_of_uk_day(date(2026, 10, 25)), Some(end_utc(2026, 10, 25, 23)));
    }

    fn start_strategy() -> impl Strategy<Value = DateTime<Utc>> {
        // 2026 to 2028: across the shipped bank holidays and past the last.
        (1_767_225_600i64..1_861_920_000)
            .prop_map(|seconds| DateTime::<Utc>::from_timestamp(seconds, 0).expect("in range"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn due_dates_fall_on_working_days_at_the_end_of_the_day(
            start in start_strategy(),
            working_days in 1u32..300,
        ) {
            let calendar = shipped();
            let due = calendar.due_at(start, working_days);
            let local = uk_local_time(due);
            prop_assert!(calendar.is_working_day(local.date()), "{local}");
            prop_assert_eq!(local.time(), NaiveTime::from_hms_opt(23, 59, 59).expect("time"));
            prop_assert!(due > start);
        }

        #[test]
        fn due_at_is_monotonic(start in start_strategy(), working_days in 0u32..300) {
            let calendar = shipped();
            prop_assert!(calendar.due_at(start, working_days) < calendar.due_at(start, working_days + 1));
        }

        #[test]
        fn day_zero_is_the_end_of_the_start_day(start in start_strategy()) {
            let due = shipped().due_at(start, 0);
            prop_assert_eq!(uk_local_time(due).date(), uk_local_time(start).date());
            prop_assert!(due >= start);
        }
    }
}
