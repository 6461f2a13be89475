//! Fuzz target for the content detectors: any text, fed whole and then in two pieces at any
//! split, must never panic, and the counts must be the same.
#![no_main]
use labelgate_detect::{Counter, Detector, BUILT_IN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    static DETECTORS: std::sync::OnceLock<Vec<Detector>> = std::sync::OnceLock::new();
    let detectors = DETECTORS.get_or_init(|| BUILT_IN.iter().filter_map(|n| Detector::built_in(n, 1)).collect());
    let mut whole = Counter::new(detectors);
    whole.feed(&text);
    whole.finish();
    let mut cut = (split as usize * text.len()) / 255;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut pieces = Counter::new(detectors);
    pieces.feed(&text[..cut]);
    pieces.feed(&text[cut..]);
    pieces.finish();
    assert_eq!(whole.counts(), pieces.counts(), "a piece boundary changes nothing");
});
