//! `db` (date of birth, `YYYYMMDD`) and the legacy `dobd`, `dobm`, `doby`.
//!
//! `db` uses the param builder's algorithm (§5.2), the only reference that parses dates
//! at all (the Python SDK hashes `1997-02-16` as is, which Meta cannot match):
//!
//! 1. Every non-digit is a separator; take the groups of ASCII digits.
//! 2. With three or more groups, read the first three as numbers `n1 n2 n3`:
//!    `n1 > 31` → year `n1`, month `n2`, day `n3`; else `n2 > 31` → year `n2`, month
//!    `n3`, day `n1`; else year `n3`, month `n1`, day `n2` (US order wins for
//!    `03/04/1985`); in each case month and day swap when the month is above 12.
//!    Extra groups (a time of day) are ignored.
//! 3. Valid when `1800 ≤ year ≤ current year + 1`, month 1–12, day 1–31 (no per-month
//!    day check). We keep the param builder's bounds rather than the docs' 1900 so that
//!    our hashes equal the ones the param builder computes in browsers; the year comes
//!    from [`crate::NormalizeOptions::current_year`], never from the clock.
//! 4. **Deviation:** a single group of 8 digits is returned as is by the param builder
//!    even when it is not `YYYYMMDD` (`16021997`). We keep it only when it is a valid
//!    `YYYYMMDD`; otherwise we read it as `DD MM YYYY` / `MM DD YYYY` with rule 2
//!    (`16021997` → `19970216`), and refuse it when neither reading is a valid date.
//!    Meta's docs require `YYYYMMDD`, and a `DDMMYYYY` string hashed as is can never match.
//! 5. Anything else (two-digit years, month names, `YYYY-MM`) is refused (`invalid_date`).

use crate::NormalizeError;
use crate::text::trim;
use std::fmt::Write as _;

/// Earliest accepted year of birth (param builder's bound).
pub const MIN_YEAR: u32 = 1800;

fn is_valid(year: u64, month: u64, day: u64, current_year: u16) -> bool {
    (u64::from(MIN_YEAR)..=u64::from(current_year) + 1).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
}

/// Param builder rule 2; returns `(year, month, day)` when valid.
fn from_three(n1: u64, n2: u64, n3: u64, current_year: u16) -> Option<(u64, u64, u64)> {
    let (year, a, b) = if n1 > 31 {
        (n1, n2, n3) // year, month, day
    } else if n2 > 31 {
        (n2, n3, n1)
    } else {
        (n3, n1, n2)
    };
    let (month, day) = if a > 12 { (b, a) } else { (a, b) };
    is_valid(year, month, day, current_year).then_some((year, month, day))
}

/// Parse a group of ASCII digits, saturating (a 30-digit group is just "too big").
fn number(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

fn write_date(out: &mut String, (year, month, day): (u64, u64, u64)) {
    out.clear();
    // Writing into a String cannot fail.
    let _ = write!(out, "{year:04}{month:02}{day:02}");
}

/// Normalise a date of birth to `YYYYMMDD` into `out` (cleared first).
pub fn normalize_date_of_birth(
    input: &str,
    current_year: u16,
    out: &mut String,
) -> Result<(), NormalizeError> {
    out.clear();
    if trim(input).is_empty() {
        return Ok(());
    }
    let mut groups = input
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty());
    let first = groups.next();
    let second = groups.next();
    let third = groups.next();
    match (first, second, third) {
        (Some(a), Some(b), Some(c)) => {
            let date = from_three(number(a), number(b), number(c), current_year)
                .ok_or(NormalizeError::InvalidDate)?;
            write_date(out, date);
            Ok(())
        }
        (Some(g), None, None) if g.len() == 8 => {
            let (yyyy, mm, dd) = (number(&g[..4]), number(&g[4..6]), number(&g[6..]));
            let date = if is_valid(yyyy, mm, dd, current_year) {
                (yyyy, mm, dd)
            } else {
                from_three(
                    number(&g[..2]),
                    number(&g[2..4]),
                    number(&g[4..]),
                    current_year,
                )
                .ok_or(NormalizeError::InvalidDate)?
            };
            write_date(out, date);
            Ok(())
        }
        _ => Err(NormalizeError::InvalidDate),
    }
}

/// Normalise `dobd` (day of month) to `DD`: one or two digits, 1–31, zero-padded.
pub fn normalize_dob_day(input: &str, out: &mut String) -> Result<(), NormalizeError> {
    two_digits(input, 31, NormalizeError::InvalidDay, out)
}

/// Normalise `dobm` (month) to `MM`: one or two digits, 1–12, zero-padded. Month names
/// are refused, as by the Python SDK (the Node SDK lower-cases and sends them, which
/// Meta cannot match).
pub fn normalize_dob_month(input: &str, out: &mut String) -> Result<(), NormalizeError> {
    two_digits(input, 12, NormalizeError::InvalidMonth, out)
}

/// Normalise `doby` to `YYYY`: exactly four digits, and (like `db`) between 1800 and
/// the current year + 1.
pub fn normalize_dob_year(
    input: &str,
    current_year: u16,
    out: &mut String,
) -> Result<(), NormalizeError> {
    out.clear();
    let value = trim(input);
    if value.is_empty() {
        return Ok(());
    }
    if value.len() != 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NormalizeError::InvalidYear);
    }
    let year = number(value);
    if !(u64::from(MIN_YEAR)..=u64::from(current_year) + 1).contains(&year) {
        return Err(NormalizeError::InvalidYear);
    }
    out.push_str(value);
    Ok(())
}

fn two_digits(
    input: &str,
    max: u64,
    err: NormalizeError,
    out: &mut String,
) -> Result<(), NormalizeError> {
    out.clear();
    let value = trim(input);
    if value.is_empty() {
        return Ok(());
    }
    if !(1..=2).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err);
    }
    let n = number(value);
    if !(1..=max).contains(&n) {
        return Err(err);
    }
    let _ = write!(out, "{n:02}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(s: &str) -> Result<String, NormalizeError> {
        let mut out = String::new();
        normalize_date_of_birth(s, 2026, &mut out).map(|()| out)
    }

    #[test]
    fn dates() {
        for (input, want) in [
            ("2/16/1997", "19970216"),
            ("1997-02-16", "19970216"),
            ("16.02.1997", "19970216"),
            ("1997/2/16", "19970216"),
            ("1997-02-16T10:00:00Z", "19970216"),
            ("03/04/1985", "19850304"),
            ("19970216", "19970216"),
            ("16021997", "19970216"),
            ("02161997", "19970216"),
            ("2027-01-01", "20270101"),
            ("1800-01-01", "18000101"),
            ("1997-02-31", "19970231"),
        ] {
            assert_eq!(db(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "02/16/97",
            "February 16, 1997",
            "1997-13-45",
            "1799-01-01",
            "2028-01-01",
            "1997-02",
            "99999999",
            "1234567",
            "123456789",
            "99999999999999999999999-1-1",
        ] {
            assert_eq!(db(bad), Err(NormalizeError::InvalidDate), "{bad}");
        }
        assert_eq!(db(" ").as_deref(), Ok(""));
    }

    #[test]
    fn parts() {
        let mut out = String::new();
        assert_eq!(normalize_dob_day("7", &mut out), Ok(()));
        assert_eq!(out, "07");
        assert_eq!(
            normalize_dob_day("32", &mut out),
            Err(NormalizeError::InvalidDay)
        );
        assert_eq!(
            normalize_dob_day("0", &mut out),
            Err(NormalizeError::InvalidDay)
        );
        assert_eq!(normalize_dob_month("2", &mut out), Ok(()));
        assert_eq!(out, "02");
        assert_eq!(
            normalize_dob_month("13", &mut out),
            Err(NormalizeError::InvalidMonth)
        );
        assert_eq!(
            normalize_dob_month("Feb", &mut out),
            Err(NormalizeError::InvalidMonth)
        );
        assert_eq!(normalize_dob_year("1997", 2026, &mut out), Ok(()));
        assert_eq!(out, "1997");
        assert_eq!(
            normalize_dob_year("97", 2026, &mut out),
            Err(NormalizeError::InvalidYear)
        );
        assert_eq!(
            normalize_dob_year("3000", 2026, &mut out),
            Err(NormalizeError::InvalidYear)
        );
    }
}
