//! tar archives, read as a stream: ustar (name prefix), pax extended headers (`path`, `size`),
//! GNU long names, base-256 sizes. Written here rather than with the `tar` crate because every
//! extended header must be bounded (the crate reads a GNU long name or a pax header of any
//! declared size into memory) and a member's data must reach the walker as a stream.

use crate::{Body, Problem, Walker};
use std::io::{self, Read};

/// Bytes of one pax or GNU long-name header kept (real ones are a few hundred bytes).
const MAX_EXTENDED_HEADER: u64 = 1024 * 1024;

/// Reads every member; returns the offset just past what the archive accounts for (its last
/// member, and the end blocks), where anything appended to it begins.
pub(crate) fn members(walker: &mut Walker<'_>, reader: &mut dyn Read, path: &[String], depth: u32) -> Result<u64, Problem> {
    let consumed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut counted = crate::meter::Counted { inner: reader, count: std::rc::Rc::clone(&consumed) };
    let reader: &mut dyn Read = &mut counted;
    let mut extent = 0u64;
    let mut count = 0u64;
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    // A pax header describing a GNU sparse file (formats 0.1 and 1.0): the data is a map
    // followed by the non-hole pieces, not the file.
    let mut pax_sparse = false;
    let mut saw_end = false;
    loop {
        let mut block = [0u8; 512];
        match read_block(reader, &mut block) {
            Ok(false) => return Ok(consumed.get()),
            Ok(true) => {}
            Err(e) => return Err(Problem::from_io(&e, "tar")),
        }
        if block.iter().all(|&b| b == 0) {
            // End-of-archive blocks; `tar --ignore-zeros` reads members after them, so keep going.
            saw_end = true;
            extent = consumed.get();
            continue;
        }
        if !labelgate_extract::is_tar_header(&block) || !checksum_holds(&block) {
            if saw_end {
                return Ok(extent); // what follows the end marker is not the archive's
            }
            return Err(Problem::Malformed("tar: a header block fails its checksum".into()));
        }
        saw_end = false;
        count += 1;
        if count > walker.bounds.max_members {
            return Err(Problem::NestedLimit { limit: "max_members", max: walker.bounds.max_members });
        }
        let declared = parse_size(&block[124..136]).ok_or_else(|| Problem::Malformed("tar: unreadable size field".into()))?;
        let kind = block[156];
        let size = match kind {
            b'x' | b'X' | b'g' | b'L' | b'K' => declared,
            _ => match pax_size.take() {
                // A header size that is set must agree with the pax size (writers leave it 0, or
                // at its maximum, when the real size does not fit).
                Some(pax) if declared != 0 && declared != 0o77777777777 && declared != pax => {
                    return Err(Problem::Malformed(format!("tar: the pax size {pax} disagrees with the header's {declared}")));
                }
                Some(pax) => pax,
                None => declared,
            },
        };
        let padded = size.div_ceil(512).checked_mul(512).ok_or_else(|| Problem::Malformed("tar: a size past any file".into()))?;
        match kind {
            b'L' | b'x' | b'X' | b'K' | b'g' => {
                if size > MAX_EXTENDED_HEADER {
                    return Err(Problem::Malformed(format!("tar: extended header of {size} bytes")));
                }
                let mut data = Vec::with_capacity(size as usize);
                reader.take(size).read_to_end(&mut data).map_err(|e| Problem::from_io(&e, "tar"))?;
                if data.len() as u64 != size {
                    return Err(Problem::Malformed("tar: truncated extended header".into()));
                }
                skip(reader, padded - size)?;
                // A long name is a few hundred bytes of text; anything that is a file the engine
                // reads (some extractors write a mis-typed member out as a file) is examined.
                if data.len() > 1024 {
                    let mut child = path.to_vec();
                    child.push(format!("(tar extended header {})", kind as char));
                    walker.child(Body::Input(&mut labelgate_extract::SliceInput::new(&data)), child, depth + 1, Some(size))?;
                }
                match kind {
                    b'L' => long_name = Some(String::from_utf8_lossy(data.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()),
                    // pax, and the Solaris 'X' header GNU tar and 7-Zip read the same way.
                    // A global header's size would apply to every later member for some readers
                    // and to none for others: what it would hide is unknowable, so it is refused.
                    b'g' if pax_records(&data).iter().any(|(k, _)| k == "size" || k.starts_with("GNU.sparse.")) => {
                        return Err(Problem::Malformed("tar: a global pax header sets a size".into()));
                    }
                    b'x' | b'X' => {
                        for (key, value) in pax_records(&data) {
                            match key.as_str() {
                                "path" => pax_path = Some(value),
                                // Digits only: readers disagree on "+N" or spaces, and a size one
                                // reader takes and another refuses hides what follows.
                                "size" => {
                                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                                        return Err(Problem::Malformed(format!("tar: pax size {value:?} is not a plain number")));
                                    }
                                    pax_size = value.parse().ok();
                                }
                                key if key.starts_with("GNU.sparse.") => pax_sparse = true,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        let name = pax_path.take().or_else(|| long_name.take()).unwrap_or_else(|| ustar_name(&block));
        let sparse = std::mem::take(&mut pax_sparse);
        let mut member = reader.take(size);
        let mut child = path.to_vec();
        child.push(name);
        if kind == b'S' || kind == b'M' || sparse {
            let what = if kind == b'M' { "multi-volume continuation" } else { "sparse member" };
            walker.unreadable(child, depth + 1, Some(size), Problem::Unsupported(format!("tar {what}")))?;
        } else if size > 0 {
            // Whatever its type says (a link, a device, a directory, a type no standard
            // defines), a member that carries data is a file to GNU tar and 7-Zip: read it.
            walker.child(Body::Drained(&mut member), child, depth + 1, Some(size))?;
        }
        // Whatever the member did not read, and the padding to the next block.
        io::copy(&mut member, &mut io::sink()).map_err(|e| Problem::from_io(&e, "tar"))?;
        if member.limit() != 0 {
            return Err(Problem::Malformed("tar: truncated member".into()));
        }
        skip(reader, padded - size)?;
    }
}

/// Reads one 512-byte block: `Ok(false)` at a clean end of the stream.
fn read_block(reader: &mut dyn Read, block: &mut [u8; 512]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < 512 {
        let n = reader.read(&mut block[filled..])?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated header block"));
        }
        filled += n;
    }
    Ok(true)
}

/// Skips padding; a final member's padding may be missing (tools accept it).
fn skip(reader: &mut dyn Read, n: u64) -> Result<(), Problem> {
    io::copy(&mut reader.take(n), &mut io::sink()).map_err(|e| Problem::from_io(&e, "tar"))?;
    Ok(())
}

/// The header checksum (bytes 148..156 counted as spaces) matches, as readers require even when
/// the ustar magic is present.
fn checksum_holds(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let digits: Vec<u8> = field.iter().copied().skip_while(|&b| b == b' ').take_while(|b| (b'0'..=b'7').contains(b)).collect();
    let stated = digits.iter().fold(0u32, |acc, &d| acc.saturating_mul(8).saturating_add((d - b'0') as u32));
    let unsigned: u32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { b' ' as u32 } else { b as u32 }).sum();
    // Some old writers summed signed bytes.
    let signed: i32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { b' ' as i32 } else { b as i8 as i32 }).sum();
    !digits.is_empty() && (stated == unsigned || stated as i32 == signed)
}

/// Octal (NUL/space padded) or base-256 (high bit of the first byte set).
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(value);
    }
    let text: Vec<u8> = field.iter().copied().skip_while(|&b| b == b' ').take_while(|&b| b != 0 && b != b' ').collect();
    if text.is_empty() {
        return Some(0);
    }
    let mut value = 0u64;
    for d in text {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add((d - b'0') as u64)?;
    }
    Some(value)
}

fn ustar_name(block: &[u8; 512]) -> String {
    let field = |range: std::ops::Range<usize>| -> String {
        let raw = &block[range];
        String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
    };
    let name = field(0..100);
    if &block[257..262] == b"ustar" {
        let prefix = field(345..500);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// `"<len> <key>=<value>\n"` records of a pax extended header.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|&b| b == b' ') else { break };
        let Some(len) = std::str::from_utf8(&rest[..space]).ok().and_then(|s| s.parse::<usize>().ok()) else { break };
        if len <= space || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((String::from_utf8_lossy(&record[..eq]).into_owned(), String::from_utf8_lossy(&record[eq + 1..]).into_owned()));
        }
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_records() {
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
        assert_eq!(parse_size(b"        1750"), Some(1000));
        assert_eq!(parse_size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_size(b"0000000175x\0"), None);
        assert_eq!(
            pax_records(b"22 path=a/b/long.docx\n11 size=42\n"),
            vec![("path".into(), "a/b/long.docx".into()), ("size".into(), "42".into())]
        );
        assert_eq!(pax_records(b"99 path=x\n"), vec![]);
    }
}
