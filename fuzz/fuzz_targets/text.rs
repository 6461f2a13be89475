//! Fuzz target for document text (OOXML parts streamed through inflate and the XML reader, PDF
//! content streams through fonts and CMaps, plain text): any bytes, small limits that must hold,
//! never a panic; the text handed on never exceeds the text limit.
#![no_main]
use labelgate_extract::{document_text, plain_text, Limits, SliceInput, TextLimits, TextOut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_part_bytes: 1 << 20, max_buffered_bytes: 8 << 20, ..Limits::default() };
    let text_limits = TextLimits { max_text_bytes: 64 << 10, max_source_bytes: 4 << 20 };
    for plain in [false, true] {
        let mut seen = 0u64;
        let mut sink = |s: &str| seen += s.len() as u64;
        let mut out = TextOut::new(&mut sink, &text_limits);
        let mut input = SliceInput::new(data);
        let _ = if plain { plain_text(&mut input, &mut out) } else { document_text(&mut input, &limits, &mut out) };
        let report = out.finish();
        assert_eq!(report.text_bytes, seen);
        assert!(seen <= text_limits.max_text_bytes, "text past the limit");
    }
});
