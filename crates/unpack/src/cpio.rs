//! cpio (what macOS Archive Utility writes as `.cpio` and `.cpgz`: the portable ASCII `odc`
//! format; `newc`/`crc` from Linux tools; the old binary format) and Unix `ar` archives, read
//! as streams like tar. Small enough to read here; no maintained crate reads all of them.

use crate::{Body, Problem, Walker};
use std::io::{self, Read};

/// Name bytes kept per member (real names are short; the rest is skipped).
const MAX_NAME: u64 = 64 * 1024;

pub(crate) fn cpio_members(walker: &mut Walker<'_>, reader: &mut dyn Read, path: &[String], depth: u32) -> Result<(), Problem> {
    let mut count = 0u64;
    loop {
        let mut magic = [0u8; 6];
        if !read_full(reader, &mut magic)? {
            return Ok(()); // a clean end (no trailer): what was read is what there is
        }
        let (name_len, size, pad) = match &magic {
            b"070701" | b"070702" => {
                let mut rest = [0u8; 104];
                need(reader, &mut rest)?;
                let field = |i: usize| hex(&rest[8 * i..8 * i + 8]);
                // fields after the magic: ino mode uid gid nlink mtime filesize devmaj devmin
                // rdevmaj rdevmin namesize check
                (field(11)?, field(6)?, 4u64)
            }
            b"070707" => {
                let mut rest = [0u8; 70];
                need(reader, &mut rest)?;
                // dev ino mode uid gid nlink rdev mtime(11) namesize(6) filesize(11)
                (octal(&rest[53..59])?, octal(&rest[59..70])?, 1u64)
            }
            m if u16::from_le_bytes([m[0], m[1]]) == 0o070707 || u16::from_be_bytes([m[0], m[1]]) == 0o070707 => {
                let little = u16::from_le_bytes([m[0], m[1]]) == 0o070707;
                let mut header = [0u8; 26];
                header[..6].copy_from_slice(m);
                need(reader, &mut header[6..])?;
                let word = |i: usize| -> u64 {
                    let b = [header[2 * i], header[2 * i + 1]];
                    (if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }) as u64
                };
                // magic dev ino mode uid gid nlink rdev mtime(2) namesize filesize(2)
                (word(10), (word(11) << 16) | word(12), 2u64)
            }
            _ => return Err(Problem::Malformed("cpio: unknown header".into())),
        };
        if name_len > MAX_NAME {
            return Err(Problem::Malformed(format!("cpio: a name of {name_len} bytes")));
        }
        let mut name = vec![0u8; name_len as usize];
        need(reader, &mut name)?;
        let header_len = match magic[0] {
            b'0' if pad == 4 => 110,
            b'0' => 76,
            _ => 26,
        };
        skip(reader, pad_to(header_len + name_len, pad))?;
        let name = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
        if name == "TRAILER!!!" {
            return Ok(());
        }
        count += 1;
        if count > walker.bounds.max_members {
            return Err(Problem::NestedLimit { limit: "max_members", max: walker.bounds.max_members });
        }
        let mut member = (&mut *reader).take(size);
        if size > 0 {
            examine(walker, &mut member, name, path, depth)?;
        }
        drain(member, "cpio")?;
        skip(reader, pad_to(size, pad))?;
    }
}

pub(crate) fn ar_members(walker: &mut Walker<'_>, reader: &mut dyn Read, path: &[String], depth: u32) -> Result<(), Problem> {
    let mut magic = [0u8; 8];
    need(reader, &mut magic)?;
    let mut long_names: Vec<u8> = Vec::new();
    let mut count = 0u64;
    loop {
        let mut header = [0u8; 60];
        if !read_full(reader, &mut header)? {
            return Ok(());
        }
        if &header[58..60] != b"`\n" {
            return Err(Problem::Malformed("ar: a header without its terminator".into()));
        }
        let size: u64 =
            String::from_utf8_lossy(&header[48..58]).trim().parse().map_err(|_| Problem::Malformed("ar: unreadable size".into()))?;
        let raw_name = String::from_utf8_lossy(&header[..16]).trim_end().to_string();
        count += 1;
        if count > walker.bounds.max_members {
            return Err(Problem::NestedLimit { limit: "max_members", max: walker.bounds.max_members });
        }
        let mut member = (&mut *reader).take(size);
        if raw_name == "//" && size <= MAX_NAME {
            // GNU's table of long names.
            long_names.clear();
            member.read_to_end(&mut long_names).map_err(|e| Problem::from_io(&e, "ar"))?;
        } else if raw_name != "/" && raw_name != "/SYM64/" && size > 0 {
            let name = if let Some(index) = raw_name.strip_prefix('/').and_then(|n| n.parse::<usize>().ok()) {
                let rest = long_names.get(index..).unwrap_or(&[]);
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                String::from_utf8_lossy(&rest[..end]).trim_end_matches('/').to_string()
            } else if let Some(len) = raw_name.strip_prefix("#1/").and_then(|n| n.parse::<u64>().ok()) {
                // BSD: the name is the start of the data.
                let mut name = vec![0u8; len.min(MAX_NAME) as usize];
                need(&mut member, &mut name)?;
                String::from_utf8_lossy(&name).trim_end_matches('\0').to_string()
            } else {
                raw_name.trim_end_matches('/').to_string()
            };
            examine(walker, &mut member, name, path, depth)?;
        }
        drain(member, "ar")?;
        skip(reader, size % 2)?;
    }
}

/// One member's data, examined as a file named `name` below `path`.
fn examine<R: Read>(walker: &mut Walker<'_>, member: &mut io::Take<R>, name: String, path: &[String], depth: u32) -> Result<(), Problem> {
    let size = member.limit();
    let mut child = path.to_vec();
    child.push(name);
    walker.child(Body::Drained(member), child, depth + 1, Some(size))
}

/// Reads what the walk left of a member, to reach the next header; short data is a truncation.
fn drain<R: Read>(mut member: io::Take<R>, what: &str) -> Result<(), Problem> {
    io::copy(&mut member, &mut io::sink()).map_err(|e| Problem::from_io(&e, what))?;
    if member.limit() != 0 {
        return Err(Problem::Malformed(format!("{what}: truncated member")));
    }
    Ok(())
}

fn pad_to(len: u64, align: u64) -> u64 {
    (align - len % align) % align
}

fn hex(field: &[u8]) -> Result<u64, Problem> {
    u64::from_str_radix(std::str::from_utf8(field).unwrap_or("x"), 16)
        .map_err(|_| Problem::Malformed("cpio: a field is not hexadecimal".into()))
}

fn octal(field: &[u8]) -> Result<u64, Problem> {
    u64::from_str_radix(std::str::from_utf8(field).unwrap_or("x"), 8).map_err(|_| Problem::Malformed("cpio: a field is not octal".into()))
}

/// Fills `buf`: `Ok(false)` at a clean end before the first byte.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> Result<bool, Problem> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).map_err(|e| Problem::from_io(&e, "archive"))?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(Problem::Malformed("archive: truncated header".into()));
        }
        filled += n;
    }
    Ok(true)
}

fn need(reader: &mut dyn Read, buf: &mut [u8]) -> Result<(), Problem> {
    if read_full(reader, buf)? || buf.is_empty() {
        Ok(())
    } else {
        Err(Problem::Malformed("archive: truncated header".into()))
    }
}

fn skip(reader: &mut dyn Read, n: u64) -> Result<(), Problem> {
    io::copy(&mut reader.take(n), &mut io::sink()).map_err(|e| Problem::from_io(&e, "archive"))?;
    Ok(())
}
