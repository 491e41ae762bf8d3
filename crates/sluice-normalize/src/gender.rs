//! `ge`: gender, `f` or `m`.
//!
//! Rule: trim, lower-case, then an exact match in a table of English words for female
//! and male; anything else is refused (`invalid_gender`). Why: Meta accepts only `f` and
//! `m`; this is the param builder's algorithm and word list (§5.3), so `Male` → `m` and
//! `Woman` → `f` as there. The Python SDK only lower-cases (`male`), which Meta would not
//! match. `Mr.` (with a dot), `non-binary`, `x` and non-English words are refused, as
//! by the param builder: guessing would put wrong data into matching.

use crate::NormalizeError;
use crate::text::trim;

/// Words read as male (exact, after trimming and lower-casing).
const MALE: &[&str] = &[
    "m",
    "male",
    "man",
    "boy",
    "gentleman",
    "guy",
    "sir",
    "mister",
    "mr",
    "son",
    "father",
    "dad",
    "daddy",
    "papa",
    "uncle",
    "nephew",
    "brother",
    "husband",
    "boyfriend",
    "groom",
    "widower",
    "king",
    "prince",
    "duke",
    "count",
    "emperor",
    "god",
    "lord",
    "lad",
    "fellow",
    "chap",
    "bloke",
    "dude",
    "he",
    "him",
    "his",
    "himself",
];

/// Words read as female (exact, after trimming and lower-casing).
const FEMALE: &[&str] = &[
    "f",
    "female",
    "woman",
    "girl",
    "lady",
    "miss",
    "ms",
    "mrs",
    "madam",
    "ma'am",
    "daughter",
    "mother",
    "mom",
    "mama",
    "mommy",
    "aunt",
    "niece",
    "sister",
    "wife",
    "girlfriend",
    "bride",
    "widow",
    "queen",
    "princess",
    "duchess",
    "countess",
    "empress",
    "goddess",
    "maiden",
    "lass",
    "gal",
    "chick",
    "dame",
    "belle",
    "she",
    "her",
    "hers",
    "herself",
];

/// Normalise a gender into `out` (cleared first): `m`, `f`, or empty for blank input.
pub fn normalize_gender(input: &str, out: &mut String) -> Result<(), NormalizeError> {
    out.clear();
    let value = trim(input);
    if value.is_empty() {
        return Ok(());
    }
    // The longest word is 10 bytes; anything much longer cannot match.
    if value.len() > 16 {
        return Err(NormalizeError::InvalidGender);
    }
    out.push_str(value);
    if !out.is_ascii() {
        let lowered = value.to_lowercase();
        out.clear();
        out.push_str(&lowered);
    } else {
        out.make_ascii_lowercase();
    }
    let code = if MALE.contains(&out.as_str()) {
        "m"
    } else if FEMALE.contains(&out.as_str()) {
        "f"
    } else {
        out.clear();
        return Err(NormalizeError::InvalidGender);
    };
    out.clear();
    out.push_str(code);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ge(s: &str) -> Result<String, NormalizeError> {
        let mut out = String::new();
        normalize_gender(s, &mut out).map(|()| out)
    }

    #[test]
    fn genders() {
        assert_eq!(ge("Male").as_deref(), Ok("m"));
        assert_eq!(ge(" M ").as_deref(), Ok("m"));
        assert_eq!(ge("FEMALE").as_deref(), Ok("f"));
        assert_eq!(ge("Ma'am").as_deref(), Ok("f"));
        assert_eq!(ge("").as_deref(), Ok(""));
        for bad in [
            "Mr.",
            "non-binary",
            "X",
            "weiblich",
            "mmmmmmmmmmmmmmmmmmmmmm",
        ] {
            assert_eq!(ge(bad), Err(NormalizeError::InvalidGender), "{bad}");
        }
    }
}
