//! Schedule expressions as CloudWatch Events (EventBridge rules) read them, which is what a
//! dataset's `triggers[].schedule.expression` holds: `cron(minutes hours day-of-month month
//! day-of-week year)` in UTC, and `rate(N minute|minutes|hour|hours|day|days)`.

use chrono::{DateTime, Datelike, Days, NaiveDate, Timelike, Utc};

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleExpr {
    /// `cron(...)`.
    Cron(Box<Cron>),
    /// `rate(...)`: every this many seconds.
    Rate(u64),
}

/// The six fields of a `cron(...)` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: DaySpec,
    months: Vec<bool>,
    years: Vec<bool>,
}

/// Day of month or day of week: exactly one of the two is `?`.
#[derive(Debug, Clone, PartialEq)]
enum DaySpec {
    /// Days of the month, 1–31 (index 0 unused).
    OfMonth(Vec<bool>),
    /// `L` in day-of-month: the month's last day.
    LastOfMonth,
    /// Days of the week, 1 (Sunday) – 7 (Saturday).
    OfWeek(Vec<bool>),
    /// `nL`: the month's last such weekday.
    LastWeekday(u32),
    /// `n#k`: the k-th such weekday of the month.
    NthWeekday(u32, u32),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2199;

/// A value of a field: a number, or a name (`JAN`, `SUN`) where the field has names.
fn value(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    let v = match names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        Some(i) => i as u32 + 1,
        None => text
            .parse::<u32>()
            .map_err(|_| format!("'{text}' is not a number"))?,
    };
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {min}-{max}"))
    }
}

/// A field of `*`, `a`, `a-b`, `*/s`, `a/s`, `a-b/s` terms separated by commas.
fn set(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut out = vec![false; max as usize + 1];
    for term in field.split(',') {
        let (range, step) = match term.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step '{s}' is not a positive number"))?,
            ),
            None => (term, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, min, max, names)?, value(b, min, max, names)?),
                // `a/s` runs from a to the end of the field.
                None if term.contains('/') => (value(r, min, max, names)?, max),
                None => {
                    let v = value(r, min, max, names)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("the range {from}-{to} is reversed"));
        }
        for v in (from..=to).step_by(step as usize) {
            out[v as usize] = true;
        }
    }
    Ok(out)
}

fn days(dom: &str, dow: &str) -> Result<DaySpec, String> {
    match (dom, dow) {
        ("?", "?") => Err("one of day-of-month and day-of-week must be '?', not both".into()),
        ("L", "?") => Ok(DaySpec::LastOfMonth),
        (d, "?") if d.contains('W') => Err("'W' (nearest weekday) is not supported".into()),
        (d, "?") => Ok(DaySpec::OfMonth(set(d, 1, 31, &[])?)),
        // `L` alone in day-of-week is the week's last day, Saturday, every week; only `nL`
        // is the month's last such weekday.
        ("?", "L") => Ok(DaySpec::OfWeek(set("7", 1, 7, &WEEKDAYS)?)),
        ("?", w) if w.len() > 1 && w.ends_with('L') => Ok(DaySpec::LastWeekday(value(
            &w[..w.len() - 1],
            1,
            7,
            &WEEKDAYS,
        )?)),
        ("?", w) if w.contains('#') => {
            let (d, n) = w.split_once('#').unwrap_or_default();
            let n = n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| format!("'#{n}' must be 1-5"))?;
            Ok(DaySpec::NthWeekday(value(d, 1, 7, &WEEKDAYS)?, n))
        }
        ("?", w) => Ok(DaySpec::OfWeek(set(w, 1, 7, &WEEKDAYS)?)),
        _ => Err("one of day-of-month and day-of-week must be '?'".into()),
    }
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(31, |d| d.day())
}

impl DaySpec {
    fn matches(&self, date: NaiveDate) -> bool {
        // 1 = Sunday, as in the expressions.
        let weekday = date.weekday().num_days_from_sunday() + 1;
        match self {
            DaySpec::OfMonth(set) => set[date.day() as usize],
            DaySpec::LastOfMonth => date.day() == days_in_month(date),
            DaySpec::OfWeek(set) => set[weekday as usize],
            DaySpec::LastWeekday(w) => *w == weekday && date.day() + 7 > days_in_month(date),
            DaySpec::NthWeekday(w, n) => *w == weekday && (date.day() - 1) / 7 + 1 == *n,
        }
    }
}

impl Cron {
    fn parse(body: &str) -> Result<Self, String> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = fields[..] else {
            return Err(format!(
                "cron takes six fields (minutes hours day-of-month month day-of-week year), got {}",
                fields.len()
            ));
        };
        Ok(Cron {
            minutes: set(min, 0, 59, &[]).map_err(|e| format!("minutes: {e}"))?,
            hours: set(hour, 0, 23, &[]).map_err(|e| format!("hours: {e}"))?,
            days: days(dom, dow)?,
            months: set(month, 1, 12, &MONTHS).map_err(|e| format!("month: {e}"))?,
            years: set(year, FIRST_YEAR, LAST_YEAR, &[]).map_err(|e| format!("year: {e}"))?,
        })
    }

    /// The first instant strictly after `after` the expression names, if any before 2200.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after
            .with_second(0)?
            .with_nanosecond(0)?
            .checked_add_signed(chrono::TimeDelta::minutes(1))?;
        let mut date = start.date_naive();
        while date.year() as u32 <= LAST_YEAR {
            let wanted = self.years[date.year() as usize]
                && self.months[date.month() as usize]
                && self.days.matches(date);
            if wanted {
                for h in (0..24).filter(|h| self.hours[*h as usize]) {
                    for m in (0..60).filter(|m| self.minutes[*m as usize]) {
                        let t = date.and_hms_opt(h, m, 0)?.and_utc();
                        if t >= start {
                            return Some(t);
                        }
                    }
                }
            }
            date = date.checked_add_days(Days::new(1))?;
        }
        None
    }
}

impl ScheduleExpr {
    /// Parses an expression; the error says what is wrong with it (without the expression).
    pub fn parse(expression: &str) -> Result<Self, String> {
        let e = expression.trim();
        if let Some(body) = e.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
            return Ok(ScheduleExpr::Cron(Box::new(Cron::parse(body)?)));
        }
        if let Some(body) = e.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
            let (n, unit) = body
                .trim()
                .split_once(' ')
                .ok_or("rate takes a number and a unit")?;
            let n: u64 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("'{n}' is not a positive whole number"))?;
            let seconds = match (unit.trim(), n) {
                ("minute", 1) | ("minutes", 2..) => 60,
                ("hour", 1) | ("hours", 2..) => 3600,
                ("day", 1) | ("days", 2..) => 86400,
                (u, _) => {
                    return Err(format!(
                        "unit '{u}' must be minute, hour or day for 1, minutes, hours or days above"
                    ));
                }
            };
            return Ok(ScheduleExpr::Rate(n * seconds));
        }
        Err("a schedule expression is cron(...) or rate(...)".into())
    }

    /// The first instant strictly after `after` (seconds since the epoch). A rate counts its
    /// periods from `anchor` (when the schedule was set).
    pub fn next_after(&self, after: f64, anchor: f64) -> Option<f64> {
        match self {
            ScheduleExpr::Rate(period) => {
                let period = *period as f64;
                let periods = ((after - anchor) / period).floor().max(0.0) + 1.0;
                Some(anchor + periods * period)
            }
            ScheduleExpr::Cron(cron) => {
                let after = DateTime::<Utc>::from_timestamp_millis((after * 1000.0) as i64)?;
                cron.next_after(after).map(|t| t.timestamp() as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> f64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp() as f64
    }

    fn next(expr: &str, after: &str) -> String {
        let t = ScheduleExpr::parse(expr)
            .unwrap()
            .next_after(at(after), at(after))
            .unwrap();
        DateTime::<Utc>::from_timestamp(t as i64, 0)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn cron_expressions_name_the_instants_aws_documents() {
        // Every day at 12:00 UTC.
        assert_eq!(
            next("cron(0 12 * * ? *)", "2026-12-02T11:00:00Z"),
            "2026-12-02T12:00:00+00:00"
        );
        assert_eq!(
            next("cron(0 12 * * ? *)", "2026-12-02T12:00:00Z"),
            "2026-12-03T12:00:00+00:00"
        );
        // 10:15 every Monday to Friday (2026-12-05 is a Saturday).
        assert_eq!(
            next("cron(15 10 ? * MON-FRI *)", "2026-12-04T11:00:00Z"),
            "2026-12-07T10:15:00+00:00"
        );
        // Every 5 minutes.
        assert_eq!(
            next("cron(0/5 * * * ? *)", "2026-12-02T11:03:20Z"),
            "2026-12-02T11:05:00+00:00"
        );
        // The last day of the month, the last Friday, the first Monday.
        assert_eq!(
            next("cron(0 0 L * ? *)", "2026-02-03T00:00:00Z"),
            "2026-02-28T00:00:00+00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * 6L *)", "2026-12-01T00:00:00Z"),
            "2026-12-25T00:00:00+00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * MON#1 *)", "2026-12-02T00:00:00Z"),
            "2026-12-07T00:00:00+00:00"
        );
        // `L` alone in day-of-week: the last day of every week, Saturday.
        assert_eq!(
            next("cron(0 0 ? * L *)", "2026-12-02T00:00:00Z"),
            "2026-12-05T00:00:00+00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * L *)", "2026-12-05T00:00:00Z"),
            "2026-12-12T00:00:00+00:00"
        );
    }

    #[test]
    fn rates_count_from_their_anchor() {
        let rate = ScheduleExpr::parse("rate(5 minutes)").unwrap();
        assert_eq!(rate.next_after(1000.0, 100.0), Some(1300.0));
        assert_eq!(rate.next_after(100.0, 100.0), Some(400.0));
        assert_eq!(
            ScheduleExpr::parse("rate(1 hour)"),
            Ok(ScheduleExpr::Rate(3600))
        );
    }

    #[test]
    fn malformed_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("cron(0 12 * * * *)", "'?'"),
            ("cron(0 12 * * ?)", "six fields"),
            ("cron(61 * * * ? *)", "minutes"),
            ("cron(0 12 15W * ? *)", "W"),
            ("rate(0 minutes)", "positive"),
            ("rate(1 minutes)", "unit"),
            ("every day", "cron(...) or rate(...)"),
        ] {
            let e = ScheduleExpr::parse(expr).unwrap_err();
            assert!(e.contains(says), "{expr}: {e}");
        }
    }
}
