//! Glue to `sluice-core`: hash every raw value of a [`UserData`] in place.
//!
//! This is the gateway's one hashing step: after it, no [`UserDataValue::Raw`] remains
//! (the queue must never store raw personal data). Values that were hashed already or
//! carry a param-builder appendix were classified by `sluice-core` when the event was
//! parsed and are left as they are.

use crate::{
    CountryCode, FieldHash, NormalizeError, NormalizeOptions, PiiField, hash_field,
    normalize_country,
};
use sluice_core::{HashedKey, UserData, UserDataValue};

/// A value that was refused and removed. Carries the key and the reason, never the
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRejection {
    /// The `user_data` key.
    pub key: HashedKey,
    /// Why the value was refused.
    pub error: NormalizeError,
}

impl FieldRejection {
    /// The wire name of the key (`em`, `ph`, …).
    pub fn field(&self) -> &'static str {
        self.key.as_str()
    }

    /// The stable reason code (`invalid_email`, …).
    pub fn code(&self) -> &'static str {
        self.error.code()
    }
}

/// The normaliser for a core key. `app_user_id` (a Node-SDK-only key Meta hashes)
/// is an advertiser id like `external_id` and gets the same rule.
fn field_of(key: HashedKey) -> PiiField {
    match key {
        HashedKey::Em => PiiField::Email,
        HashedKey::Ph => PiiField::Phone,
        HashedKey::Fn => PiiField::FirstName,
        HashedKey::Ln => PiiField::LastName,
        HashedKey::Ge => PiiField::Gender,
        HashedKey::Db => PiiField::DateOfBirth,
        HashedKey::Ct => PiiField::City,
        HashedKey::St => PiiField::State,
        HashedKey::Zp => PiiField::Zip,
        HashedKey::Country => PiiField::Country,
        HashedKey::ExternalId | HashedKey::AppUserId => PiiField::ExternalId,
        HashedKey::F5first => PiiField::FirstNameInitial5,
        HashedKey::F5last => PiiField::LastNameInitial5,
        HashedKey::Fi => PiiField::FirstInitial,
        HashedKey::Dobd => PiiField::DobDay,
        HashedKey::Dobm => PiiField::DobMonth,
        HashedKey::Doby => PiiField::DobYear,
    }
}

/// The event's country, read from the first raw `country` value that is valid.
fn event_country(user_data: &UserData, scratch: &mut String) -> Option<CountryCode> {
    user_data.country.values.iter().find_map(|v| match v {
        UserDataValue::Raw(pii) => {
            normalize_country(pii.expose(), scratch).ok()?;
            CountryCode::from_alpha2(scratch)
        }
        _ => None,
    })
}

/// Normalise and hash every raw value of `user_data` in place.
///
/// * A raw value becomes its SHA-256 (or passes through as a digest/param-builder
///   value when that is what it was).
/// * A value that normalises to nothing is dropped silently (it carries no data).
/// * A value that cannot be valid is dropped and reported in the returned list.
/// * Equal values of one key after hashing are kept once (the Python SDK sends a set).
///
/// The event's own `country` (its first valid raw value) becomes
/// [`NormalizeOptions::event_country`] unless `opts` already has one, so that phone
/// numbers, states and ZIP codes are read for the right country.
///
/// Allocates a scratch buffer per call; [`hash_user_data_with`] is the same without.
pub fn hash_user_data(user_data: &mut UserData, opts: &NormalizeOptions) -> Vec<FieldRejection> {
    let mut scratch = String::new();
    let mut rejections = Vec::new();
    hash_user_data_with(user_data, opts, &mut scratch, &mut rejections);
    rejections
}

/// [`hash_user_data`] without allocating: `scratch` is a reusable buffer (its content
/// afterwards is unspecified) and rejections are *appended* to `rejections`.
///
/// Values are replaced in place, so every key's `Vec` keeps its capacity; the only
/// memory released is a raw value's own string when its hash replaces it. Same
/// results, same order, same deduplication as [`hash_user_data`].
pub fn hash_user_data_with(
    user_data: &mut UserData,
    opts: &NormalizeOptions,
    scratch: &mut String,
    rejections: &mut Vec<FieldRejection>,
) {
    let opts = match opts.event_country {
        Some(_) => *opts,
        None => opts.with_event_country(event_country(user_data, scratch)),
    };
    for key in HashedKey::ALL {
        let values = &mut user_data.hashed_mut(key).values;
        if !values.iter().any(UserDataValue::is_raw) {
            continue;
        }
        let field = field_of(key);
        // values[..kept] are the results so far, in input order; values[kept..i] are
        // dropped or duplicate values waiting to be truncated away.
        let mut kept = 0;
        for i in 0..values.len() {
            if let UserDataValue::Raw(pii) = &values[i] {
                let hashed = match hash_field(field, pii.expose(), &opts, scratch) {
                    Ok(FieldHash::Sha256(d)) => UserDataValue::Sha256(d),
                    Ok(FieldHash::Md5(d)) => UserDataValue::Md5(d),
                    Ok(FieldHash::Verbatim(v)) => UserDataValue::Verbatim(v.to_owned()),
                    Ok(FieldHash::Empty) => continue,
                    Err(error) => {
                        rejections.push(FieldRejection { key, error });
                        continue;
                    }
                };
                values[i] = hashed;
            }
            if values[..kept].contains(&values[i]) {
                continue;
            }
            values.swap(kept, i);
            kept += 1;
        }
        values.truncate(kept);
        let hv = user_data.hashed_mut(key);
        if hv.values.len() != 1 {
            hv.single = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;

    fn sha(s: &str) -> UserDataValue {
        UserDataValue::Sha256(sha256(s))
    }

    #[test]
    fn hashes_everything_raw_and_reports_rejections() {
        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Em, " John_Smith@Gmail.com ")
            .push_raw(HashedKey::Em, "john_smith@gmail.com")
            .push_raw(HashedKey::Em, "not an email")
            .push_raw(HashedKey::Ph, "0171 1234567")
            .push_raw(HashedKey::Country, "Deutschland")
            .push_raw(HashedKey::Zp, "   ")
            .push_raw(HashedKey::Ge, "Woman")
            .push_raw(HashedKey::Db, "16.02.1997")
            .push_raw(HashedKey::ExternalId, "  User 42 ")
            .push_raw(HashedKey::AppUserId, "App-7")
            .push_classified(
                HashedKey::Ct,
                "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F.BA",
            );
        let rejections = hash_user_data(&mut ud, &NormalizeOptions::new(2026));

        assert!(!ud.has_raw_values());
        assert_eq!(
            ud.em.values,
            vec![sha("john_smith@gmail.com")],
            "deduplicated"
        );
        assert_eq!(
            ud.ph.values,
            vec![sha("491711234567")],
            "read with the event's country"
        );
        assert_eq!(ud.country.values, vec![sha("de")]);
        assert!(ud.zp.is_empty() && !ud.zp.single, "blank value dropped");
        assert_eq!(ud.ge.values, vec![sha("f")]);
        assert_eq!(ud.db.values, vec![sha("19970216")]);
        assert_eq!(ud.external_id.values, vec![sha("user42")]);
        assert_eq!(ud.app_user_id.values, vec![sha("app-7")]);
        assert!(matches!(&ud.ct.values[..], [UserDataValue::Verbatim(v)] if v.ends_with(".BA")));

        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].field(), "em");
        assert_eq!(rejections[0].code(), "invalid_email");
        let shown = format!("{rejections:?}");
        assert!(
            !shown.contains("not an email"),
            "no raw value in a rejection"
        );
    }

    #[test]
    fn configured_event_country_wins_and_default_region_applies() {
        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Ph, "(650) 555-1212");
        let opts = NormalizeOptions::new(2026).with_default_region(Some(CountryCode::US));
        assert!(hash_user_data(&mut ud, &opts).is_empty());
        assert_eq!(ud.ph.values, vec![sha("16505551212")]);

        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Ph, "06 12 34 56 78")
            .push_raw(HashedKey::Country, "us");
        let opts = NormalizeOptions::new(2026).with_event_country(CountryCode::from_alpha2("fr"));
        assert!(hash_user_data(&mut ud, &opts).is_empty());
        assert_eq!(ud.ph.values, vec![sha("33612345678")]);
    }

    #[test]
    fn already_hashed_values_are_untouched() {
        let mut ud = UserData::default();
        ud.push_classified(
            HashedKey::Em,
            "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F",
        );
        let before = ud.clone();
        assert!(hash_user_data(&mut ud, &NormalizeOptions::new(2026)).is_empty());
        assert!(ud == before);
    }

    /// The algorithm `hash_user_data` had before `hash_user_data_with` (a new `Vec`
    /// per key): the in-place version must give exactly its results.
    fn reference(user_data: &mut UserData, opts: &NormalizeOptions) -> Vec<FieldRejection> {
        let mut scratch = String::new();
        let opts = match opts.event_country {
            Some(_) => *opts,
            None => opts.with_event_country(event_country(user_data, &mut scratch)),
        };
        let mut rejections = Vec::new();
        for key in HashedKey::ALL {
            let values = user_data.hashed_mut(key);
            if !values.values.iter().any(UserDataValue::is_raw) {
                continue;
            }
            let field = field_of(key);
            let old = std::mem::take(&mut values.values);
            let mut kept: Vec<UserDataValue> = Vec::with_capacity(old.len());
            for value in old {
                let hashed = match value {
                    UserDataValue::Raw(pii) => {
                        match hash_field(field, pii.expose(), &opts, &mut scratch) {
                            Ok(FieldHash::Sha256(d)) => UserDataValue::Sha256(d),
                            Ok(FieldHash::Md5(d)) => UserDataValue::Md5(d),
                            Ok(FieldHash::Verbatim(v)) => UserDataValue::Verbatim(v.to_owned()),
                            Ok(FieldHash::Empty) => continue,
                            Err(error) => {
                                rejections.push(FieldRejection { key, error });
                                continue;
                            }
                        }
                    }
                    other => other,
                };
                if !kept.contains(&hashed) {
                    kept.push(hashed);
                }
            }
            values.values = kept;
            if values.values.len() != 1 {
                values.single = false;
            }
        }
        rejections
    }

    const POOL: [&str; 10] = [
        "Jane@Example.com",
        " jane@example.com ",
        "not an email",
        "   ",
        "+49 171 1234567",
        "0171 1234567",
        "DE",
        "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F",
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f.AQQCAQMC",
        "d41d8cd98f00b204e9800998ecf8427e",
    ];

    proptest::proptest! {
        #[test]
        fn in_place_matches_the_reference(
            picks in proptest::collection::vec((0usize..4, 0usize..10, proptest::bool::ANY), 0..12),
            single in proptest::bool::ANY,
        ) {
            let keys = [HashedKey::Em, HashedKey::Ph, HashedKey::Country, HashedKey::Zp];
            let mut ud = UserData::default();
            for (k, v, classified) in picks {
                if classified {
                    ud.push_classified(keys[k], POOL[v]);
                } else {
                    ud.push_raw(keys[k], POOL[v]);
                }
            }
            for k in keys {
                ud.hashed_mut(k).single = single;
            }
            let opts = NormalizeOptions::new(2026);
            let mut want = ud.clone();
            let want_rejections = reference(&mut want, &opts);
            let mut scratch = String::new();
            let mut rejections = vec![FieldRejection { key: HashedKey::Ge, error: NormalizeError::InvalidGender }];
            hash_user_data_with(&mut ud, &opts, &mut scratch, &mut rejections);
            proptest::prop_assert!(ud == want);
            proptest::prop_assert_eq!(rejections[0].key, HashedKey::Ge, "appended, not cleared");
            proptest::prop_assert_eq!(&rejections[1..], &want_rejections[..]);
        }
    }

    #[test]
    fn reuse_keeps_capacity() {
        let opts = NormalizeOptions::new(2026);
        let mut ud = UserData::default();
        let mut scratch = String::new();
        let mut rejections = Vec::new();
        for round in 0..3 {
            ud.em.clear();
            ud.em.push(UserDataValue::Raw(sluice_core::Pii::new(
                "Jane@Example.com",
            )));
            ud.em
                .push(UserDataValue::Raw(sluice_core::Pii::new("jo@example.com")));
            let before = ud.em.values.as_ptr();
            rejections.clear();
            hash_user_data_with(&mut ud, &opts, &mut scratch, &mut rejections);
            assert_eq!(
                ud.em.values,
                vec![sha("jane@example.com"), sha("jo@example.com")]
            );
            assert!(rejections.is_empty());
            if round > 0 {
                assert_eq!(ud.em.values.as_ptr(), before, "same allocation");
            }
        }
    }
}
