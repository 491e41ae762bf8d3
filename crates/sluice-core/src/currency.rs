//! ISO 4217 currency codes, for validating `custom_data.currency`.
//!
//! Meta's docs show both `USD` and `usd`; the Node SDK checks the ISO list, the
//! Python SDK only checks for three letters. We check the list, case-insensitively.

/// Active ISO 4217 alphabetic codes (plus the precious-metal and testing codes
/// Meta's Node SDK also accepts are left out on purpose: they are not currencies
/// a purchase is paid in).
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
    "ZWG", "CLF", "COU", "MXV", "UYI", "UYW", "BOV", "CHE", "CHW", "USN", "SLL", "HRK", "ZWL",
];

/// True when `code` (any case) is an ISO 4217 currency code.
pub fn is_iso_4217(code: &str) -> bool {
    code.len() == 3 && ISO_4217.iter().any(|c| c.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_in_any_case() {
        assert!(is_iso_4217("USD"));
        assert!(is_iso_4217("eur"));
        assert!(!is_iso_4217("XYZ"));
        assert!(!is_iso_4217("US"));
        assert!(!is_iso_4217("ÜSD"));
    }

    #[test]
    fn table_has_no_duplicates() {
        let mut sorted = ISO_4217.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ISO_4217.len());
    }
}
