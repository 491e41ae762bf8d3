//! Character-level helpers shared by the field normalisers.
//!
//! Two decisions live here:
//!
//! * **Trimming follows JavaScript's `String.prototype.trim`** (Unicode `White_Space`
//!   plus U+FEFF), not Python's `str.strip`: the param builder, which is what browsers
//!   and most servers run, trims a leading byte-order mark and Python does not (vector
//!   `em "\u{feff}john@example.com"`). Rust's `char::is_whitespace` also counts U+0085
//!   (NEL), which JS does not; a NEL around a value is never meaningful, so we trim it.
//! * **Lower-casing is full Unicode** (`GROẞ` → `groß`, `İ` → `i̇`, final sigma), done
//!   per character except for `Σ`, whose lower case depends on its neighbours; a value
//!   containing `Σ` takes the (allocating, rare) `str::to_lowercase` path so that the
//!   result is exactly what Python, JS and Rust's `to_lowercase` produce. No Unicode
//!   normalisation (NFC/NFD) is applied anywhere: no reference implementation does it,
//!   and doing it would change hashes.

/// Whitespace as JavaScript's `\s` and `trim()` see it (plus U+0085).
#[inline]
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Trim [`is_space`] characters from both ends.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Write the characters of `input` accepted by `keep` into `out`, lower-cased.
///
/// Filtering happens *before* lower-casing (the param builder's order), which only
/// matters for the context-sensitive final sigma: in `ΟΔΟΣ-Α` the `Σ` is not final once
/// the dash is gone. The characters lower-casing produces are filtered too.
pub(crate) fn filter_lower(input: &str, keep: impl Fn(char) -> bool, out: &mut String) {
    out.clear();
    let mut has_sigma = false;
    for c in input.chars().filter(|&c| keep(c)) {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == 'Σ' {
            has_sigma = true;
            out.push(c);
        } else {
            // `keep` also applies to what lower-casing produces: `İ` becomes `i` plus
            // U+0307, and a filter that refuses combining marks (postal codes) must
            // not let the mark in through the back door, or normalising twice would
            // not give the same result.
            out.extend(c.to_lowercase().filter(|&l| keep(l)));
        }
    }
    if has_sigma {
        // Everything else is already lower case, and lower-casing is idempotent, so
        // this only decides σ versus ς from the (filtered) context.
        let lowered = out.to_lowercase();
        out.clear();
        out.push_str(&lowered);
    }
}

/// A short lookup key built on the stack: lower-cased, alphabetic characters only,
/// final sigma folded to `σ` (the generated tables use the same rule).
///
/// Keys longer than the buffer cannot be in any table; they mark the key as overflowed
/// so that the lookup fails instead of matching a truncated prefix.
pub(crate) struct LookupKey {
    buf: [u8; 96],
    len: usize,
    overflow: bool,
}

impl LookupKey {
    pub(crate) fn new(input: &str) -> Self {
        let mut key = LookupKey {
            buf: [0; 96],
            len: 0,
            overflow: false,
        };
        for c in input.chars().filter(|c| c.is_alphabetic()) {
            for l in c.to_lowercase() {
                let l = if l == 'ς' { 'σ' } else { l };
                key.push(l);
            }
        }
        key
    }

    fn push(&mut self, c: char) {
        let mut tmp = [0u8; 4];
        let bytes = c.encode_utf8(&mut tmp).as_bytes();
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    /// The key, or `None` when it overflowed (and so matches nothing).
    pub(crate) fn as_str(&self) -> Option<&str> {
        if self.overflow {
            return None;
        }
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// True when the input had no alphabetic character at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0 && !self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_matches_js() {
        assert_eq!(trim("\u{feff}\u{a0} a b \t\n"), "a b");
        assert_eq!(
            trim("\u{200b}a"),
            "\u{200b}a",
            "ZWSP is not whitespace anywhere"
        );
    }

    #[test]
    fn filter_lower_handles_sigma_and_expansions() {
        let mut out = String::new();
        filter_lower("ΣΟΦΟΚΛΗΣ", |_| true, &mut out);
        assert_eq!(out, "σοφοκλης");
        filter_lower("ΟΔΟΣ-Α", |c| c != '-', &mut out);
        assert_eq!(out, "οδοσα");
        filter_lower("İlker GROẞ", |c| c != ' ', &mut out);
        assert_eq!(out, "i\u{307}lkergroß");
    }

    #[test]
    fn lookup_key_overflow_matches_nothing() {
        let long = "a".repeat(200);
        assert_eq!(LookupKey::new(&long).as_str(), None);
        assert_eq!(
            LookupKey::new("Côte d'Ivoire").as_str(),
            Some("côtedivoire")
        );
        assert_eq!(LookupKey::new("ΕΛΛΆΣ").as_str(), Some("ελλάσ"));
        assert!(LookupKey::new("12 -").is_empty());
    }
}
