//! 7-Zip archives through `sevenz-rust2` (pure Rust: LZMA, LZMA2, BCJ filters, bzip2, deflate,
//! solid blocks). Entries are decoded in archive order, once; each entry's first bytes decide
//! whether it is read, and the rest of a solid block is drained through the meter.
//! Encrypted content or headers (AES-256) are `encrypted`.

use crate::meter::Metered;
use crate::{Body, Problem, Walker};
use labelgate_extract::{Input, InputReader};
use sevenz_rust2::{Archive, ArchiveReader, Error, Password};
use std::cell::Cell;
use std::io;
use std::rc::Rc;

/// Method id of 7-Zip's AES-256 + SHA-256 coder.
const AES: &[u8] = &[0x06, 0xf1, 0x07, 0x01];

/// Reads every entry; returns the offset just past the archive's header (its end).
pub(crate) fn members(walker: &mut Walker<'_>, input: &mut dyn Input, path: &[String], depth: u32) -> Result<u64, Problem> {
    // Decoder memory is what the archive declares: checked before the crate allocates it
    // (7-Zip's own -mx9 uses 64 MiB dictionaries).
    crate::sevenz_guard::check(input, walker.bounds.max_inner_bytes.max(64 * 1024 * 1024))?;
    let extent = crate::sevenz_guard::extent(input);
    let archive_len = input.len();
    let mut reader = InputReader::new(input);
    let password = Password::empty();
    let archive = Archive::read(&mut reader, &password).map_err(|e| problem("7z", e))?;
    if archive.files.len() as u64 > walker.bounds.max_members {
        return Err(Problem::NestedLimit { limit: "max_members", max: walker.bounds.max_members });
    }
    if archive.blocks.iter().any(|b| b.coders.iter().any(|c| c.encoder_method_id() == AES)) {
        return Err(Problem::Encrypted("7z content is encrypted".into()));
    }
    // Decoders size their dictionaries from what a block declares: never past the budget.
    if archive.blocks.iter().any(|b| b.get_unpack_size() > walker.bounds.max_expanded_bytes) {
        return Err(Problem::NestedLimit { limit: "max_expanded_bytes", max: walker.bounds.max_expanded_bytes });
    }
    let mut archive_reader = ArchiveReader::from_archive(archive, reader, password);
    archive_reader.set_thread_count(1);
    let mut stopped: Option<Problem> = None;
    // Solid blocks state no per-entry packed size: the ratio is judged for the archive as a
    // whole, all its bytes against everything decoded so far.
    let consumed = Rc::new(Cell::new(archive_len.max(1)));
    let mut decoded_so_far = 0u64;
    let result = archive_reader.for_each_entries(|entry, data| {
        if entry.is_directory() || !entry.has_stream {
            return Ok(true);
        }
        let mut child = path.to_vec();
        child.push(entry.name().to_string());
        let mut metered = Metered {
            inner: data,
            consumed: Rc::clone(&consumed),
            produced: decoded_so_far,
            budget: Rc::clone(&walker.spent),
            max_expanded: walker.bounds.max_expanded_bytes,
            max_ratio: walker.bounds.max_ratio,
        };
        if let Err(p) = walker.child(Body::Drained(&mut metered), child, depth + 1, Some(entry.size())) {
            stopped = Some(p);
            return Ok(false);
        }
        // Solid blocks: the next entry starts where this one ends.
        if let Err(e) = io::copy(&mut metered, &mut io::sink()) {
            stopped = Some(Problem::from_io(&e, "7z"));
            return Ok(false);
        }
        decoded_so_far = metered.produced;
        Ok(true)
    });
    if let Some(p) = stopped {
        return Err(p);
    }
    result.map_err(|e| problem("7z", e))?;
    Ok(extent)
}

fn problem(what: &str, e: Error) -> Problem {
    match e {
        Error::PasswordRequired | Error::MaybeBadPassword(_) => Problem::Encrypted(format!("{what} is encrypted")),
        Error::UnsupportedCompressionMethod(m) => Problem::Unsupported(format!("{what} compression method {m}")),
        Error::Io(ref io, _) if crate::meter::limit_hit(io).is_some() => Problem::from_io(io, what),
        other => Problem::Malformed(format!("{what}: {other}")),
    }
}
