//! Field value checks: dates, date-times, booleans, emails, enumerations and lists.

use crate::roster::schema::{Kind, CEDS_GRADES};
use crate::roster::text::Trimmed;

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
        match s.trimmed().to_ascii_lowercase().as_str() {
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

/// Longest identifier accepted (bytes): far above any real SIS id, and what the store's keys
/// are sized for.
pub const MAX_ID_BYTES: usize = 4 * 1024;
/// Longest field value accepted (bytes).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest column name accepted (bytes).
pub const MAX_HEADER_BYTES: usize = 1024;

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
        let days = crate::clock::now_secs() / 86_400;
        Date::from_days(i64::try_from(days).unwrap_or(0))
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

/// A date (`2024-09-01`, midnight UTC) or an RFC 3339 date-time (`Z` or an offset, fractions
/// optional) as milliseconds since the Unix epoch.
pub fn instant_ms(s: &str) -> Option<i64> {
    let day = |d: Date| d.days() * 86_400_000;
    if s.len() == 10 {
        return parse_date(s).map(day);
    }
    let date = parse_datetime(s)?;
    let b = s.as_bytes();
    let two = |i: usize| -> Option<i64> {
        let h = b.get(i)?.checked_sub(b'0')?;
        let l = b.get(i + 1)?.checked_sub(b'0')?;
        (h < 10 && l < 10).then_some(i64::from(h) * 10 + i64::from(l))
    };
    let (hh, mm) = (two(11)?, two(14)?);
    let mut i = 16;
    let mut secs = 0;
    let mut millis = 0;
    if b.get(i) == Some(&b':') {
        secs = two(i + 1)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let digits: Vec<u8> = b[i + 1..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            for (k, d) in digits.iter().take(3).enumerate() {
                millis += i64::from(d - b'0') * [100, 10, 1][k];
            }
            i += 1 + digits.len();
        }
    }
    let offset_min = match b.get(i) {
        None | Some(b'Z') => 0,
        Some(&sign) => {
            let h = two(i + 1)?;
            let m = if b.get(i + 3) == Some(&b':') {
                two(i + 4)?
            } else {
                two(i + 3)?
            };
            let o = h * 60 + m;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
    };
    Some(day(date) + ((hh * 60 + mm - offset_min) * 60 + secs) * 1000 + millis)
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces or
/// control characters, at most 254 bytes.
pub fn is_email(s: &str) -> bool {
    // Printable ASCII without spaces (nearly always): no white space or control character.
    let graphic = s.bytes().all(|b| (0x21..0x7f).contains(&b));
    if s.len() > 254 || (!graphic && s.chars().any(|c| c.is_whitespace() || c.is_control())) {
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
        && if domain.is_ascii() {
            domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        } else {
            domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        }
}

/// Whether `v` has a control character (Unicode `Cc`); a byte test when it is printable ASCII.
fn has_control(v: &str) -> bool {
    !v.bytes().all(|b| (0x20..0x7f).contains(&b)) && v.chars().any(char::is_control)
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

/// One item of a OneRoster `userIds` list, `{type:identifier}`, as (type, identifier); `None`
/// when it is not of that form.
pub fn user_id(item: &str) -> Option<(&str, &str)> {
    item.strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .and_then(|x| x.split_once(':'))
        .filter(|(t, i)| !t.is_empty() && !i.is_empty() && !t.contains('}') && !i.contains('}'))
}

/// Checks one non-empty value against its kind; `Err` explains what is wrong.
pub fn check(kind: Kind, v: &str) -> Result<(), String> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Id => {
            if v.trimmed().is_empty() {
                Err("blank identifier".into())
            } else if has_control(v) {
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
            if is_email(v.trimmed()) {
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
                if user_id(item).is_none() {
                    return Err(format!("`{item}` is not of the form {{type:identifier}}"));
                }
            }
            Ok(())
        }
    }
}

/// What [`normalize`] made of a non-empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Already canonical.
    Canonical,
    /// An unambiguous spelling of a valid value: its canonical form, and what was done.
    Fixed(String, &'static str),
    /// Not a valid value; why.
    Invalid(String),
}

/// Reads a non-empty value of `kind` the way a tolerant importer would, without ever guessing:
/// booleans and OneRoster enumerations in any case, ids and emails with surrounding spaces,
/// dates in unpadded ISO form or slash form when the day/month order is knowable (from the
/// value, or from `order`), date-times that are date-only, space-separated or zone-less
/// (read as UTC), single-digit grades. Anything else is checked by [`check`] as it is.
pub fn normalize(kind: Kind, v: &str, order: Option<DateOrder>) -> Reading {
    match check(kind, v) {
        Ok(()) => normalize_valid(kind, v),
        Err(why) => normalize_invalid(kind, v, order, why),
    }
}

/// [`normalize`] of a value [`check`] accepts: only ids and emails with surrounding spaces and
/// zone-less date-times have a more canonical form. (The engine calls [`check`] itself and
/// this only then, so a valid value is checked once.)
pub fn normalize_valid(kind: Kind, v: &str) -> Reading {
    match kind {
        Kind::Id | Kind::Email if has_outer_space(v) => {
            Reading::Fixed(v.trimmed().to_string(), "surrounding spaces removed")
        }
        Kind::DateTime if !has_zone(v) => match read_datetime(v, None) {
            DateRead::Date(f) if f != v => {
                Reading::Fixed(f, "date-time without a time zone read as UTC")
            }
            _ => Reading::Canonical,
        },
        _ => Reading::Canonical,
    }
}

/// [`normalize`] of a value [`check`] refused for `why`.
pub fn normalize_invalid(kind: Kind, v: &str, order: Option<DateOrder>, why: String) -> Reading {
    let t = v.trimmed();
    let fixed = match kind {
        Kind::Bool => {
            if t.eq_ignore_ascii_case("true") {
                Some("true".to_string())
            } else if t.eq_ignore_ascii_case("false") {
                Some("false".to_string())
            } else {
                None
            }
        }
        Kind::Enum { values, ext, .. } => {
            let mut hits = values.iter().filter(|a| a.eq_ignore_ascii_case(t));
            match (hits.next(), hits.next()) {
                (Some(one), None) => Some((*one).to_string()),
                _ if ext && is_ext_token(t) => Some(t.to_string()),
                _ => None,
            }
        }
        Kind::Date => match read_date(t, order) {
            DateRead::Date(d) => Some(d.to_string()),
            DateRead::Ambiguous(why) => return Reading::Invalid(why),
            DateRead::No => None,
        },
        Kind::DateTime => match read_datetime(t, order) {
            DateRead::Date(s) => Some(s),
            DateRead::Ambiguous(why) => return Reading::Invalid(why),
            DateRead::No => None,
        },
        Kind::GradeList { ext } => {
            let mut out = Vec::new();
            for g in list_items(t) {
                let canon = CEDS_GRADES
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(g))
                    .map(|c| (*c).to_string())
                    .or_else(|| {
                        // A spreadsheet strips the leading zero of `09`.
                        (g.len() == 1 && g.as_bytes()[0].is_ascii_digit() && g != "0")
                            .then(|| format!("0{g}"))
                    })
                    .or_else(|| (ext && is_ext_token(g)).then(|| g.to_string()));
                match canon {
                    Some(c) => out.push(c),
                    None => {
                        out.clear();
                        break;
                    }
                }
            }
            (!out.is_empty()).then(|| out.join(","))
        }
        Kind::Id | Kind::Email | Kind::Year => {
            (t != v && check(kind, t).is_ok()).then(|| t.to_string())
        }
        Kind::Text | Kind::IdList | Kind::UserIds => None,
    };
    let what = match kind {
        Kind::Bool => "boolean written in another case",
        Kind::Enum { .. } => "value written in another case",
        Kind::Date => "date rewritten as YYYY-MM-DD",
        Kind::DateTime if !t.contains(['T', 't', ' ']) => {
            "date without a time read as midnight UTC"
        }
        Kind::DateTime if has_zone(&t.to_ascii_uppercase()) => {
            "date-time written with an upper-case T and Z"
        }
        Kind::DateTime => "date-time without a time zone read as UTC",
        Kind::GradeList { .. } => "grade rewritten as its CEDS code",
        _ => "surrounding spaces removed",
    };
    match fixed {
        Some(f) if f != v && check(kind, &f).is_ok() => Reading::Fixed(f, what),
        _ => Reading::Invalid(why),
    }
}

/// Whether a value starts or ends with white space: looks at two characters, not the value
/// (this runs on every id and email of a bundle).
fn has_outer_space(v: &str) -> bool {
    let (Some(&first), Some(&last)) = (v.as_bytes().first(), v.as_bytes().last()) else {
        return false;
    };
    // ASCII at both ends (nearly always): a byte test. Otherwise Unicode white space too.
    if first.is_ascii() && last.is_ascii() {
        return char::from(first).is_whitespace() || char::from(last).is_whitespace();
    }
    v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace)
}

/// Whether a date-time (or its time part) ends in a zone: `Z`, `+hh:mm`, `-hhmm`.
fn has_zone(t: &str) -> bool {
    let time = t.rsplit(['T', ' ']).next().unwrap_or(t);
    time.ends_with('Z')
        || time
            .get(5..)
            .is_some_and(|rest| rest.contains('+') || rest.contains('-'))
}

/// The outcome of reading a date in a lenient form.
enum DateRead<T> {
    Date(T),
    /// A slash date whose day/month order the value does not tell, and no `dates.order`.
    Ambiguous(String),
    No,
}

/// `2023-5-1`, `8/27/2018`, `27/8/2018`, `1/05/2023` (with `order`).
fn read_date(t: &str, order: Option<DateOrder>) -> DateRead<Date> {
    let valid = |y: u32, m: u32, d: u32| {
        let y = i32::try_from(y).ok()?;
        ((1000..=9999).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m))
            .then_some(Date { y, m, d })
    };
    let parts = |sep: char| -> Option<[u32; 3]> {
        let mut it = t.split(sep);
        let a = it.next()?;
        let b = it.next()?;
        let c = it.next()?;
        if it.next().is_some() || [a, b, c].iter().any(|p| p.is_empty() || p.len() > 4) {
            return None;
        }
        Some([
            digits(a.as_bytes())?,
            digits(b.as_bytes())?,
            digits(c.as_bytes())?,
        ])
    };
    if let Some([y, m, d]) = parts('-') {
        if t.split('-').next().is_some_and(|y| y.len() == 4) {
            return valid(y, m, d).map_or(DateRead::No, DateRead::Date);
        }
        return DateRead::No;
    }
    let Some([a, b, y]) = parts('/') else {
        return DateRead::No;
    };
    if t.rsplit('/').next().is_none_or(|y| y.len() != 4) {
        // A two-digit year's century is a guess.
        return DateRead::No;
    }
    let mdy = valid(y, a, b);
    let dmy = valid(y, b, a);
    match (mdy, dmy, order) {
        (Some(d), None, _) | (None, Some(d), _) => DateRead::Date(d),
        (Some(d), Some(_), _) if a == b => DateRead::Date(d),
        (Some(d), Some(_), Some(DateOrder::Mdy)) | (Some(_), Some(d), Some(DateOrder::Dmy)) => {
            DateRead::Date(d)
        }
        (Some(m), Some(d), None) => DateRead::Ambiguous(format!(
            "`{t}` could be {m} (month first) or {d} (day first); set the source's \
             dates.order = \"mdy\" or \"dmy\" to read such dates"
        )),
        (None, None, _) => DateRead::No,
    }
}

/// A date-time read leniently, as canonical UTC text: `2023-05-01` (midnight),
/// `2017-05-06 08:01:05` and `2017-05-06T08:01:05` (no zone: UTC), slash dates as in
/// [`read_date`], with or without a time.
fn read_datetime(t: &str, order: Option<DateOrder>) -> DateRead<String> {
    // RFC 3339 allows `t` and `z` in lower case.
    let (date, time) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], t[i + 1..].trim_start()),
        None => (t, ""),
    };
    let upper;
    let time = match time.strip_suffix('z') {
        Some(rest) => {
            upper = format!("{rest}Z");
            upper.as_str()
        }
        None => time,
    };
    let d = match read_date(date, order) {
        DateRead::Date(d) => d,
        DateRead::Ambiguous(w) => return DateRead::Ambiguous(w),
        DateRead::No => return DateRead::No,
    };
    if time.is_empty() {
        return DateRead::Date(format!("{d}T00:00:00Z"));
    }
    let candidate = format!("{d}T{time}");
    if parse_datetime(&candidate).is_none() {
        return DateRead::No;
    }
    // A time with a zone is kept as written; one without is UTC.
    if has_zone(time) {
        DateRead::Date(candidate)
    } else {
        let full = if time.len() == 5 {
            format!("{candidate}:00Z")
        } else {
            format!("{candidate}Z")
        };
        if parse_datetime(&full).is_some() {
            DateRead::Date(full)
        } else {
            DateRead::No
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3339 allows a lower-case `t` and `z`: such a value is valid, written upper-case.
    #[test]
    fn lower_case_t_and_z_are_read() {
        let fixed = |v: &str| normalize(Kind::DateTime, v, None);
        assert_eq!(
            fixed("2026-09-01T08:00:00z"),
            Reading::Fixed(
                "2026-09-01T08:00:00Z".into(),
                "date-time written with an upper-case T and Z"
            )
        );
        assert_eq!(
            fixed("2026-09-01t08:00:00+02:00"),
            Reading::Fixed(
                "2026-09-01T08:00:00+02:00".into(),
                "date-time written with an upper-case T and Z"
            )
        );
        assert_eq!(
            fixed("2026-09-01t08:00"),
            Reading::Fixed(
                "2026-09-01T08:00:00Z".into(),
                "date-time without a time zone read as UTC"
            )
        );
        assert!(matches!(
            fixed("2026-09-01T08:00:00zz"),
            Reading::Invalid(_)
        ));
    }

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

    fn fixed(kind: Kind, v: &str, order: Option<DateOrder>) -> String {
        match normalize(kind, v, order) {
            Reading::Fixed(f, _) => f,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn normalizes_what_is_unambiguous() {
        let status = Kind::Enum {
            values: &["active", "tobedeleted"],
            ext: false,
            ci: false,
        };
        let class_type = Kind::Enum {
            values: &["homeroom", "scheduled"],
            ext: true,
            ci: false,
        };
        assert_eq!(fixed(Kind::Bool, "TRUE", None), "true");
        assert_eq!(fixed(Kind::Bool, " False", None), "false");
        assert_eq!(fixed(status, "toBeDeleted", None), "tobedeleted");
        assert_eq!(fixed(status, "Active", None), "active");
        assert_eq!(fixed(class_type, "Scheduled", None), "scheduled");
        assert_eq!(fixed(Kind::Id, " S1 ", None), "S1");
        assert_eq!(fixed(Kind::Email, "a@x.org ", None), "a@x.org");
        assert_eq!(fixed(Kind::Date, "2023-5-1", None), "2023-05-01");
        assert_eq!(fixed(Kind::Date, "8/27/2018", None), "2018-08-27");
        assert_eq!(fixed(Kind::Date, "27/8/2018", None), "2018-08-27");
        assert_eq!(fixed(Kind::Date, "3/3/2018", None), "2018-03-03");
        assert_eq!(
            fixed(Kind::DateTime, "2017-05-06 08:01:05", None),
            "2017-05-06T08:01:05Z"
        );
        assert_eq!(
            fixed(Kind::DateTime, "2017-05-06T08:01:05", None),
            "2017-05-06T08:01:05Z"
        );
        assert_eq!(
            fixed(Kind::DateTime, "2023-05-01", None),
            "2023-05-01T00:00:00Z"
        );
        assert_eq!(
            fixed(Kind::DateTime, "2017-05-06 08:01:05+02:00", None),
            "2017-05-06T08:01:05+02:00"
        );
        assert_eq!(fixed(Kind::GradeList { ext: false }, "9,10", None), "09,10");
        assert_eq!(fixed(Kind::GradeList { ext: false }, "kg", None), "KG");
        for ok in ["true", "2024-08-01", "S1"] {
            let k = match ok {
                "true" => Kind::Bool,
                "S1" => Kind::Id,
                _ => Kind::Date,
            };
            assert_eq!(normalize(k, ok, None), Reading::Canonical);
        }
    }

    #[test]
    fn never_guesses_a_date() {
        // Day and month could be either way round.
        match normalize(Kind::Date, "1/05/2023", None) {
            Reading::Invalid(why) => assert!(why.contains("dates.order"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fixed(Kind::Date, "1/05/2023", Some(DateOrder::Mdy)),
            "2023-01-05"
        );
        assert_eq!(
            fixed(Kind::Date, "1/05/2023", Some(DateOrder::Dmy)),
            "2023-05-01"
        );
        // Two-digit years, impossible dates and other spellings are not read.
        for bad in ["8/27/18", "13/13/2020", "2023-02-30", "yes", "1.5.2023"] {
            assert!(
                matches!(normalize(Kind::Date, bad, None), Reading::Invalid(_)),
                "{bad}"
            );
        }
        for bad in ["TRUE!", "yes", "1"] {
            assert!(matches!(
                normalize(Kind::Bool, bad, None),
                Reading::Invalid(_)
            ));
        }
    }
}
