//! `fn`, `ln`, `external_id` and the legacy `f5first`, `f5last`, `fi`.
//!
//! Names: remove whitespace and ASCII punctuation, then lower-case (full Unicode).
//! Why: Meta's docs say "lowercase, no punctuation" and allow UTF-8 letters (`Valéry`,
//! `정`); this is exactly the param builder's algorithm (§5.3). The Python SDK only
//! lower-cases, so `Mary-Jane`, `O'Brien`, `Anne Marie`, `Dr. John` differ from it
//! (`maryjane`, `obrien`, `annemarie`, `drjohn` here). Accents, CJK and emoji are kept;
//! non-ASCII punctuation is kept too, as by the param builder, so that a hash computed by
//! the param builder in a browser matches ours.
//!
//! `external_id`: lower-case and remove all whitespace, then hash (param builder).
//! The SDKs send it verbatim and unhashed; Meta recommends hashing. Whatever is chosen
//! must be the same in the pixel (`fbq('init', id, {external_id})`); sluice.js sends
//! the raw id and lets the gateway apply this rule, so both sides agree.
//!
//! `f5first` / `f5last` / `fi`: the first 5 / 5 / 1 characters (Unicode scalar values)
//! of the *name-normalised* value. Why: the SDKs take the prefix of the merely
//! lower-cased value (`Mary-Jane` → `mary-`), but these keys are prefixes of `fn`/`ln`
//! and must agree with the `fn`/`ln` we send (`maryj`).

use crate::text::{filter_lower, is_space};

fn is_name_char(c: char) -> bool {
    !(is_space(c) || c.is_ascii_punctuation())
}

/// Normalise a first or last name into `out` (cleared first).
pub fn normalize_name(input: &str, out: &mut String) {
    filter_lower(input, is_name_char, out);
}

/// Normalise a name and keep its first `n` characters (`f5first`, `f5last`: 5; `fi`: 1).
pub fn normalize_name_prefix(input: &str, n: usize, out: &mut String) {
    normalize_name(input, out);
    if let Some((cut, _)) = out.char_indices().nth(n) {
        out.truncate(cut);
    }
}

/// Normalise an `external_id` into `out` (cleared first): lower-case, no whitespace.
pub fn normalize_external_id(input: &str, out: &mut String) {
    filter_lower(input, |c| !is_space(c), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        let mut out = String::new();
        normalize_name(s, &mut out);
        out
    }

    #[test]
    fn names() {
        assert_eq!(name("Mary-Jane"), "maryjane");
        assert_eq!(name("  JOHN  "), "john");
        assert_eq!(name("García Márquez"), "garcíamárquez");
        assert_eq!(
            name("O’Brien"),
            "o’brien",
            "non-ASCII punctuation kept, as PB"
        );
        assert_eq!(name("😀Smile"), "😀smile");
        assert_eq!(name("ΣΟΦΟΚΛΗΣ"), "σοφοκλης");
        assert_eq!(name(" . - "), "");
    }

    #[test]
    fn prefixes() {
        let mut out = String::new();
        normalize_name_prefix("Müllerschön", 5, &mut out);
        assert_eq!(out, "mülle");
        normalize_name_prefix("  émile", 1, &mut out);
        assert_eq!(out, "é");
        normalize_name_prefix("Al", 5, &mut out);
        assert_eq!(out, "al");
        normalize_name_prefix("Mary-Jane", 5, &mut out);
        assert_eq!(out, "maryj");
    }

    #[test]
    fn external_ids() {
        let mut out = String::new();
        normalize_external_id("  User 42  ", &mut out);
        assert_eq!(out, "user42");
        normalize_external_id("0F8FAD5B-D9CB", &mut out);
        assert_eq!(out, "0f8fad5b-d9cb");
    }
}
