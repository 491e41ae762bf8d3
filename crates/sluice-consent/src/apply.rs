//! Applying a decision to the event, before it is stored.
//!
//! - `deliver`: the event is left as sent. A sender's own `opt_out` or LDU fields
//!   are never removed or weakened.
//! - `deliver_ldu`: `data_processing_options = ["LDU"]` with the decision's
//!   country and state codes (capi-reference.md §10: country `1` for the US, state
//!   `1000` for California, `0` = Meta geolocates from the IP).
//! - `deliver_without_identifiers`: every `user_data` key that points at a person
//!   is removed; only the coarse keys listed in the policy's
//!   `without_identifiers.keep` stay (default: `client_user_agent`), plus the
//!   *business's* own ids (`page_id`, `ig_account_id`,
//!   `whatsapp_business_account_id`), which identify the advertiser, not the user.
//!   Query strings and fragments are cut from `event_source_url` and
//!   `referrer_url` (they carry `fbclid`, e-mail addresses in newsletter links,
//!   …), and `attribution_data` and `original_event_data` are removed (partner
//!   ids; a link to an earlier, identified event). `custom_data` (what was
//!   bought) and `app_data` (required for app events) stay.
//!
//!   **Meta will usually refuse such an event** with "insufficient customer
//!   information" (subcode 2804050): CAPI has no anonymous mode, and sluice-core's
//!   validator flags it as `insufficient_customer_information`. The outcome is for
//!   operators who prefer a counted, refused event to no event; the preset never
//!   uses it. [`Changes::identifiers_left`] tells the server whether anything
//!   matchable remains, so it can count such events instead of queueing them.
//! - `drop`: nothing to change; the caller must not store the event.
//!
//! Whatever the outcome, `opt_out: true` is set when the decision asks for it,
//! and never set back to `false`.

use crate::decision::Decision;
use crate::policy::{KeepKey, Outcome, Policy};
use sluice_core::ServerEvent;
use sluice_core::user_data::UserData;

/// What `apply` did.
#[must_use = "a dropped event must not be stored"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Store and deliver the (possibly modified) event.
    Store(Changes),
    /// Do not store; count and audit only.
    Drop,
}

/// The modifications made to a stored event, for audit and debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `user_data` keys removed.
    pub removed_keys: Vec<&'static str>,
    /// `data_processing_options` were set to LDU.
    pub set_ldu: bool,
    /// `opt_out` was set to true.
    pub set_opt_out: bool,
    /// Query/fragment cut from the URLs, related-event fields removed.
    pub stripped_context: bool,
    /// Whether the event still carries a key Meta can match on.
    pub identifiers_left: bool,
}

/// Applies `decision` to `event` (see the module docs for each outcome).
pub fn apply(decision: &Decision, event: &mut ServerEvent, policy: &Policy) -> Applied {
    let mut changes = Changes::default();
    match decision.outcome {
        Outcome::Drop => return Applied::Drop,
        Outcome::Deliver => {}
        Outcome::DeliverLdu => {
            let codes = decision.ldu.unwrap_or(crate::decision::LduCodes {
                country: 0,
                state: 0,
            });
            event.data_processing_options = Some(vec!["LDU".to_owned()]);
            event.data_processing_options_country = Some(codes.country);
            event.data_processing_options_state = Some(codes.state);
            changes.set_ldu = true;
        }
        Outcome::DeliverWithoutIdentifiers => {
            let before = event.user_data.present_keys();
            event.user_data = keep_only(&event.user_data, &policy.without_identifiers.keep);
            let after = event.user_data.present_keys();
            changes.removed_keys = before.into_iter().filter(|k| !after.contains(k)).collect();
            for url in [&mut event.event_source_url, &mut event.referrer_url]
                .into_iter()
                .flatten()
            {
                let cut = url.find(['?', '#']).unwrap_or(url.len());
                url.truncate(cut);
            }
            event.attribution_data = None;
            event.original_event_data = None;
            changes.stripped_context = true;
        }
    }
    if decision.opt_out && event.opt_out != Some(true) {
        event.opt_out = Some(true);
        changes.set_opt_out = true;
    }
    changes.identifiers_left = has_matchable_key(&event.user_data);
    Applied::Store(changes)
}

/// A fresh `user_data` with only the allowed coarse keys and business ids.
fn keep_only(ud: &UserData, keep: &std::collections::BTreeSet<KeepKey>) -> UserData {
    let mut out = UserData::default();
    for k in keep {
        match k {
            KeepKey::ClientUserAgent => out.client_user_agent.clone_from(&ud.client_user_agent),
            KeepKey::Country => out.country.clone_from(&ud.country),
            KeepKey::St => out.st.clone_from(&ud.st),
            KeepKey::Ct => out.ct.clone_from(&ud.ct),
            KeepKey::Zp => out.zp.clone_from(&ud.zp),
            KeepKey::Ge => out.ge.clone_from(&ud.ge),
        }
    }
    out.page_id.clone_from(&ud.page_id);
    out.ig_account_id.clone_from(&ud.ig_account_id);
    out.whatsapp_business_account_id
        .clone_from(&ud.whatsapp_business_account_id);
    out
}

/// Keys Meta matches a person on (the coarse ones alone are not enough).
fn has_matchable_key(ud: &UserData) -> bool {
    const COARSE: [&str; 9] = [
        "client_user_agent",
        "country",
        "st",
        "ct",
        "zp",
        "ge",
        "page_id",
        "ig_account_id",
        "whatsapp_business_account_id",
    ];
    ud.present_keys().iter().any(|k| !COARSE.contains(k))
}
