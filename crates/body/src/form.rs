//! `application/x-www-form-urlencoded` bodies (and query strings): every value, percent-decoded
//! (`+` is a space), is a file as it stands or an encoded one, named by its field.

use crate::{candidate, Candidate, Limits};

/// The candidates of a form body or query string: values that are a file the engine reads as
/// they are (a percent-encoded document), or that encode one.
pub fn form_candidates(form: &[u8], limits: &Limits) -> Vec<Candidate> {
    let mut out = Vec::new();
    for pair in form.split(|&b| b == b'&') {
        if out.len() >= limits.max_candidates {
            break;
        }
        let (key, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (&pair[..0], pair),
        };
        let decode = |s: &[u8]| -> Vec<u8> {
            let spaced: Vec<u8> = s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
            percent_encoding::percent_decode(&spaced).collect()
        };
        let name = String::from_utf8_lossy(&decode(key)).into_owned();
        let name = if name.is_empty() { "(form value)".to_string() } else { name };
        // `+` in base64 would be a space after form decoding: the raw value decides too.
        let raw = percent_encoding::percent_decode(value).collect::<Vec<u8>>();
        if raw.len() < limits.min_encoded_len {
            continue;
        }
        if labelgate_extract::sniff_kind(&raw[..raw.len().min(labelgate_extract::SNIFF_BYTES)]).is_some() {
            let size = raw.len() as u64;
            let data = if size > limits.max_decoded_bytes {
                Err(crate::BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes })
            } else {
                Ok(raw)
            };
            out.push(Candidate { name, data });
            continue;
        }
        if let Some(c) = candidate(&name, &raw, limits).or_else(|| candidate(&name, &decode(value), limits)) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    #[test]
    fn percent_encoded_and_base64_values_are_found() {
        let file = labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None));
        let pct: String = file.iter().map(|b| format!("%{b:02X}")).collect();
        let b64 = percent_encoding::utf8_percent_encode(&B64.encode(&file), percent_encoding::NON_ALPHANUMERIC).to_string();
        let form = format!("title=q3+report&doc={pct}&copy={b64}&empty=");
        let found = form_candidates(form.as_bytes(), &Limits::default());
        let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["doc", "copy"]);
        assert!(found.iter().all(|c| c.data.as_ref().unwrap() == &file));
    }
}
