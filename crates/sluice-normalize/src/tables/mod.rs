//! Static lookup tables (exact keys only, never substring guesses).
//!
//! `countries` and `currencies` are generated from ISO 3166-1 / ISO 4217 data by
//! `tools/gen_country_tables.py`; `regions` is written by hand.

pub(crate) mod countries;
pub(crate) mod currencies;
pub(crate) mod regions;

/// Binary search in a `(key, value)` table sorted by the keys' bytes.
pub(crate) fn lookup(
    table: &'static [(&'static str, &'static str)],
    key: &str,
) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, v)| *v)
}

/// Binary search in a sorted list of codes (the reference for [`CodeSet`]).
#[cfg(test)]
fn contains(table: &'static [&'static str], key: &str) -> bool {
    table
        .binary_search_by(|k| k.as_bytes().cmp(key.as_bytes()))
        .is_ok()
}

/// A set of fixed-length lower- or upper-case ASCII letter codes as a bit set, for
/// the hot look-ups (a country's alpha-2 code on every event, the currency): one
/// index computation instead of a binary search with a string compare per step.
/// `N` letters from `base` (`b'a'` or `b'A'`); `WORDS` = 26^N / 64 rounded up.
pub(crate) struct CodeSet<const N: usize, const WORDS: usize> {
    bits: [u64; WORDS],
    base: u8,
}

impl<const N: usize, const WORDS: usize> CodeSet<N, WORDS> {
    /// Built at compile time; a code that is not `N` letters from `base` fails the
    /// build.
    pub(crate) const fn new(table: &[&str], base: u8) -> Self {
        let mut bits = [0u64; WORDS];
        let mut i = 0;
        while i < table.len() {
            let code = table[i].as_bytes();
            assert!(code.len() == N, "code of the wrong length");
            let mut index = 0usize;
            let mut j = 0;
            while j < N {
                assert!(code[j] >= base && code[j] < base + 26, "not a letter");
                index = index * 26 + (code[j] - base) as usize;
                j += 1;
            }
            bits[index / 64] |= 1 << (index % 64);
            i += 1;
        }
        CodeSet { bits, base }
    }

    pub(crate) fn contains(&self, code: &[u8; N]) -> bool {
        let mut index = 0usize;
        for &c in code {
            let Some(d) = c.checked_sub(self.base).filter(|d| *d < 26) else {
                return false;
            };
            index = index * 26 + usize::from(d);
        }
        self.bits
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }
}

/// The assigned ISO 3166-1 alpha-2 codes, lower-case.
pub(crate) static ALPHA2_SET: CodeSet<2, 11> = CodeSet::new(countries::ALPHA2, b'a');
/// The ISO 4217 codes, upper-case.
pub(crate) static CURRENCY_SET: CodeSet<3, 275> = CodeSet::new(currencies::CURRENCIES, b'A');

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_sorted_unique(keys: &[&str]) {
        for pair in keys.windows(2) {
            assert!(
                pair[0].as_bytes() < pair[1].as_bytes(),
                "{:?} !< {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        assert_sorted_unique(
            &countries::COUNTRY_KEYS
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>(),
        );
        assert_sorted_unique(countries::ALPHA2);
        assert_sorted_unique(currencies::CURRENCIES);
        assert_sorted_unique(
            &regions::US_STATES
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>(),
        );
        assert_sorted_unique(
            &regions::CA_PROVINCES
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn code_sets_agree_with_the_tables() {
        let letters = |base: u8| (0..26u8).map(move |i| base + i);
        for a in letters(b'a').chain([b'A', b'0', b'{', 0xc3]) {
            for b in letters(b'a').chain([b'Z', b'`']) {
                let code = [a, b];
                let text = String::from_utf8_lossy(&code);
                assert_eq!(
                    ALPHA2_SET.contains(&code),
                    contains(countries::ALPHA2, &text),
                    "{text}"
                );
                for c in letters(b'A').chain([b'a', b'@']) {
                    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase(), c];
                    let text = String::from_utf8_lossy(&code);
                    assert_eq!(
                        CURRENCY_SET.contains(&code),
                        contains(currencies::CURRENCIES, &text),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_country_value_is_an_assigned_alpha2() {
        assert_eq!(countries::ALPHA2.len(), 249);
        for (k, v) in countries::COUNTRY_KEYS {
            assert!(contains(countries::ALPHA2, v), "{k} -> {v}");
        }
        for code in countries::ALPHA2 {
            assert_eq!(lookup(countries::COUNTRY_KEYS, code), Some(*code));
        }
    }

    #[test]
    fn region_values_are_two_ascii_letters() {
        for (k, v) in regions::US_STATES.iter().chain(regions::CA_PROVINCES) {
            assert!(
                v.len() == 2 && v.bytes().all(|b| b.is_ascii_lowercase()),
                "{k}"
            );
        }
    }
}
