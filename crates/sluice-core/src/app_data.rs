//! `app_data`: required for `action_source = app` (capi-reference.md §11.2).

use crate::wire::BoolOrInt;
use serde::{Deserialize, Serialize};

/// Number of entries `extinfo` must have, in Meta's fixed order.
pub const EXTINFO_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertiser_tracking_enabled: Option<BoolOrInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_tracking_enabled: Option<BoolOrInt>,
    /// 16 strings: `a2`/`i2`, package, short version, long version, OS version,
    /// device model, locale, timezone abbreviation, carrier, width, height,
    /// density, CPU cores, external storage GB, free storage GB, device timezone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extinfo: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_ids: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consider_views: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_dwell_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_video_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer_package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_schemes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_attribution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
}
