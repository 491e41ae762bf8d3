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

/// Binary search in a sorted list of codes.
pub(crate) fn contains(table: &'static [&'static str], key: &str) -> bool {
    table
        .binary_search_by(|k| k.as_bytes().cmp(key.as_bytes()))
        .is_ok()
}

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
