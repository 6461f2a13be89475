//! OLE embedding streams that wrap a file: `\x01Ole10Native`, the OLE1 "Package" object Office
//! writes when a user inserts any file as an object ([MS-OLEDS] 2.3.6 and the Packager's
//! native data format).

/// The file a `\x01Ole10Native` stream carries: its name (when the Packager header names one)
/// and where its bytes lie in `data`. A stream that is not in the Packager's format is an OLE1
/// object's native data as it stands: everything after the size field.
///
/// The size fields are hints, not bounds: a stream whose total size field lies (0, too small) or
/// whose Packager header does not parse, or names an empty file, is taken whole after the size
/// field, so that nothing it holds goes unread (a file behind the header is then found from its
/// end, as ZIP and PDF readers find it).
pub(crate) fn ole10_native(data: &[u8]) -> (Option<String>, std::ops::Range<usize>) {
    let whole = 4.min(data.len())..data.len();
    match packager(data, data.len()) {
        Some((name, range)) if !range.is_empty() => (name, range),
        Some((name, _)) => (name, whole),
        None => (None, whole),
    }
}

fn packager(data: &[u8], end: usize) -> Option<(Option<String>, std::ops::Range<usize>)> {
    let data = data.get(..end)?;
    let mut at = 4usize;
    let u16_at = |at: usize| data.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |at: usize| data.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    let cstr = |at: usize| -> Option<(&[u8], usize)> {
        let rest = data.get(at..)?;
        let n = memchr::memchr(0, rest)?;
        Some((&rest[..n], at + n + 1))
    };
    if u16_at(at)? != 2 {
        return None;
    }
    at += 2;
    let (label, next) = cstr(at)?;
    let (source, next) = cstr(next)?;
    at = next;
    // Two 16-bit fields (0, then 3 for an embedded file; 1 would be a link, which carries no data).
    if u16_at(at + 2)? != 3 {
        return None;
    }
    at += 4;
    let temp_len = u32_at(at)?;
    at = at.checked_add(4)?.checked_add(temp_len)?;
    let size = u32_at(at)?;
    let start = at + 4;
    let stop = start.checked_add(size)?;
    if stop > data.len() {
        return None;
    }
    let name = [source, label]
        .into_iter()
        .map(|raw| String::from_utf8_lossy(raw).rsplit(['\\', '/']).next().unwrap_or_default().trim().to_string())
        .find(|n| !n.is_empty());
    Some((name, start..stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(label: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut inner = vec![2, 0];
        inner.extend_from_slice(label.as_bytes());
        inner.push(0);
        inner.extend_from_slice(path.as_bytes());
        inner.push(0);
        inner.extend_from_slice(&[0, 0, 3, 0]);
        let temp = b"C:\\Temp\\x.docx\0";
        inner.extend_from_slice(&(temp.len() as u32).to_le_bytes());
        inner.extend_from_slice(temp);
        inner.extend_from_slice(&(body.len() as u32).to_le_bytes());
        inner.extend_from_slice(body);
        let mut out = (inner.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&inner);
        out
    }

    #[test]
    fn packager_names_the_file_and_bounds_its_bytes() {
        let stream = package("report.docx", "C:\\Users\\a\\report.docx", b"PK\x03\x04data");
        let (name, range) = ole10_native(&stream);
        assert_eq!(name.as_deref(), Some("report.docx"));
        assert_eq!(&stream[range], b"PK\x03\x04data");
    }

    #[test]
    fn other_native_data_is_taken_as_it_stands() {
        let mut stream = 6u32.to_le_bytes().to_vec();
        stream.extend_from_slice(b"%PDF-1");
        let (name, range) = ole10_native(&stream);
        assert_eq!(name, None);
        assert_eq!(&stream[range], b"%PDF-1");
    }

    #[test]
    fn lying_sizes_stay_inside_the_stream() {
        let mut stream = package("a", "b", b"xyz");
        let n = stream.len();
        stream[n - 7..n - 3].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_, range) = ole10_native(&stream);
        assert!(range.end <= stream.len());
        let (_, range) = ole10_native(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(range, 4..5);
        // A total size of 0 and a payload size of 0 do not hide what follows.
        let mut zeroed = package("a", "b.docx", b"PK\x03\x04data");
        zeroed[..4].copy_from_slice(&[0; 4]);
        let (name, range) = ole10_native(&zeroed);
        assert_eq!((name.as_deref(), &zeroed[range]), (Some("b.docx"), &b"PK\x03\x04data"[..]));
        let mut empty = package("a", "b.docx", b"");
        empty.extend_from_slice(b"PK\x03\x04after");
        let (_, range) = ole10_native(&empty);
        assert_eq!(range, 4..empty.len(), "an empty payload: the whole stream");
    }
}
