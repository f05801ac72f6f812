//! Field value checks: dates, date-times, booleans, emails, enumerations and lists.

use crate::schema::{Kind, CEDS_GRADES};

/// The day/month order of slash dates (`dates.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    /// `8/27/2018`: month first (US).
    Mdy,
    /// `27/8/2018`: day first.
    Dmy,
}

impl DateOrder {
    pub fn parse(s: &str) -> Option<DateOrder> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mdy" => Some(DateOrder::Mdy),
            "dmy" => Some(DateOrder::Dmy),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            DateOrder::Mdy => "mdy",
            DateOrder::Dmy => "dmy",
        }
    }
}

/// A calendar date, comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub y: i32,
    pub m: u32,
    pub d: u32,
}

impl Date {
    /// Days since 1970-01-01 (proleptic Gregorian).
    pub fn days(self) -> i64 {
        let y = if self.m <= 2 { self.y - 1 } else { self.y } as i64;
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = self.m as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.d as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    pub fn from_days(z: i64) -> Date {
        let z = z + 719468;
        let era = if z >= 0 { z } else { z - 146096 } / 146097;
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        Date { y, m, d }
    }

    pub fn today_utc() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Date::from_days(secs.div_euclid(86_400))
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |a, &b| {
        a.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DD` strictly.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])? as i32;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(Date { y, m, d })
}

/// Parses an ISO 8601 date-time: `YYYY-MM-DDTHH:MM(:SS(.f+)?)?(Z|±HH:MM|±HHMM)?`.
/// Returns the date part.
pub fn parse_datetime(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() < 16 || b[10] != b'T' {
        return None;
    }
    let date = parse_date(&s[..10])?;
    let time = &b[11..];
    let hh = digits(time.get(0..2)?)?;
    if time.get(2) != Some(&b':') {
        return None;
    }
    let mm = digits(time.get(3..5)?)?;
    if hh > 23 || mm > 59 {
        return None;
    }
    let mut rest = &time[5..];
    if rest.first() == Some(&b':') {
        let ss = digits(rest.get(1..3)?)?;
        if ss > 60 {
            return None;
        }
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    match rest {
        [] | [b'Z'] => Some(date),
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            (oh <= 14 && om <= 59).then_some(date)
        }
        _ => None,
    }
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces or
/// control characters, at most 254 bytes.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

fn is_ext_token(s: &str) -> bool {
    s.strip_prefix("ext:").is_some_and(|t| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// Splits a OneRoster list field (`"t1,t2"`) into trimmed, non-empty items.
pub fn list_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// Checks one non-empty value against its kind; `Err` explains what is wrong.
pub fn check(kind: Kind, v: &str) -> Result<(), String> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Id => {
            if v.trim().is_empty() {
                Err("blank identifier".into())
            } else if v.chars().any(char::is_control) {
                Err("control character in identifier".into())
            } else {
                Ok(())
            }
        }
        Kind::Enum { values, ext, ci } => {
            let ok = if ci {
                values.iter().any(|a| a.eq_ignore_ascii_case(v))
            } else {
                values.contains(&v)
            };
            if ok || (ext && is_ext_token(v)) {
                Ok(())
            } else {
                let shown: Vec<&str> = values.iter().take(12).copied().collect();
                let more = if values.len() > 12 { ", ..." } else { "" };
                Err(format!("`{v}` is not one of {}{more}", shown.join(", ")))
            }
        }
        Kind::Date => parse_date(v)
            .map(|_| ())
            .ok_or_else(|| "not a date (YYYY-MM-DD)".into()),
        Kind::DateTime => parse_datetime(v)
            .map(|_| ())
            .ok_or_else(|| "not an ISO 8601 date-time (YYYY-MM-DDThh:mm:ssZ)".into()),
        Kind::Bool => {
            if v == "true" || v == "false" {
                Ok(())
            } else {
                Err("not a boolean (true or false)".into())
            }
        }
        Kind::Email => {
            // Spaces around an address are the CSV's, not the address's.
            if is_email(v.trim()) {
                Ok(())
            } else {
                Err("not an email address".into())
            }
        }
        Kind::Year => {
            if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err("not a year (YYYY)".into())
            }
        }
        Kind::IdList => {
            if list_items(v).next().is_none() {
                Err("empty list".into())
            } else {
                Ok(())
            }
        }
        Kind::GradeList { ext } => {
            for g in list_items(v) {
                if !(CEDS_GRADES.contains(&g) || ext && is_ext_token(g)) {
                    return Err(format!("grade `{g}` is not a CEDS grade code"));
                }
            }
            Ok(())
        }
        Kind::UserIds => {
            for item in list_items(v) {
                let ok = item
                    .strip_prefix('{')
                    .and_then(|x| x.strip_suffix('}'))
                    .and_then(|x| x.split_once(':'))
                    .is_some_and(|(t, i)| {
                        !t.is_empty() && !i.is_empty() && !t.contains('}') && !i.contains('}')
                    });
                if !ok {
                    return Err(format!("`{item}` is not of the form {{type:identifier}}"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("2024-1-01").is_none());
        assert!(parse_date("24-01-011").is_none());
        for d in [0i64, 1, 59, 365, 19_000, 20_000, -1, -719_468] {
            assert_eq!(Date::from_days(d).days(), d);
        }
        assert_eq!(parse_date("2026-11-23").unwrap().days(), 20_780);
    }

    #[test]
    fn datetimes() {
        for ok in [
            "2024-08-01T12:00:00Z",
            "2024-08-01T12:00:00.123Z",
            "2024-08-01T12:00",
            "2024-08-01T12:00:00+02:00",
            "2024-08-01T12:00:00-0500",
        ] {
            assert!(parse_datetime(ok).is_some(), "{ok}");
        }
        for bad in [
            "2024-08-01",
            "2024-08-01 12:00:00",
            "2024-08-01T25:00:00Z",
            "x",
        ] {
            assert!(parse_datetime(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(is_email("ana.lopez@district.k12.us"));
        for bad in [
            "ana",
            "@x.org",
            "a@b",
            "a b@x.org",
            "a@x..org",
            "a@@x.org",
            "a@.x.org",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn kinds() {
        let e = Kind::Enum {
            values: &["school", "district"],
            ext: true,
            ci: false,
        };
        assert!(check(e, "school").is_ok());
        assert!(check(e, "School").is_err());
        assert!(check(e, "ext:campus").is_ok());
        assert!(check(e, "ext:").is_err());
        assert!(check(Kind::Bool, "TRUE").is_err());
        assert!(check(Kind::GradeList { ext: false }, "09, 10").is_ok());
        assert!(check(Kind::GradeList { ext: false }, "9").is_err());
        assert!(check(Kind::UserIds, "{LDAP:abc},{SIS:12}").is_ok());
        assert!(check(Kind::UserIds, "LDAP:abc").is_err());
        assert!(check(Kind::Year, "2025").is_ok());
        assert!(check(Kind::Year, "25").is_err());
    }
}
