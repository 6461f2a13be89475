//! Fuzz target for Graph label-list answers: any bytes, parsed as JSON and normalised in both
//! API shapes, must never panic, and every normalised label must be a well-formed GUID.
#![no_main]
use labelgate_sync::{normalize, LabelApi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let values = page.get("value").and_then(|v| v.as_array()).cloned().unwrap_or_else(|| vec![page.clone()]);
    for api in [LabelApi::Beta, LabelApi::V1] {
        for label in normalize(&values, api, Some("11111111-1111-4111-8111-111111111111")) {
            assert!(labelgate_catalog::parse_guid(&label.id).is_some());
            assert!(label.parent.as_deref().is_none_or(|p| labelgate_catalog::parse_guid(p).is_some()));
        }
    }
});
