//! A guard in front of `sevenz-rust2`: its decoders allocate the dictionary a coder's properties
//! declare (LZMA2 up to 4 GiB, PPMd its model size) before reading a byte, so a 7z of a few
//! hundred bytes could ask for gigabytes. This reads the archive's coder records first — those
//! of an encoded (compressed) header, then, after decoding that header itself under the same
//! bound, those of the main streams — and refuses memory past the bound, and encryption, before
//! the crate decodes anything.

use crate::Problem;
use labelgate_extract::Input;
use std::io::Read;

const K_END: u8 = 0x00;
const K_HEADER: u8 = 0x01;
const K_ARCHIVE_PROPERTIES: u8 = 0x02;
const K_MAIN_STREAMS_INFO: u8 = 0x04;
const K_PACK_INFO: u8 = 0x06;
const K_UNPACK_INFO: u8 = 0x07;
const K_SUBSTREAMS_INFO: u8 = 0x08;
const K_SIZE: u8 = 0x09;
const K_CRC: u8 = 0x0A;
const K_FOLDER: u8 = 0x0B;
const K_CODERS_UNPACK_SIZE: u8 = 0x0C;
const K_NUM_UNPACK_STREAM: u8 = 0x0D;
const K_FILES_INFO: u8 = 0x05;
const K_ENCODED_HEADER: u8 = 0x17;

const LZMA: &[u8] = &[0x03, 0x01, 0x01];
const LZMA2: &[u8] = &[0x21];
const PPMD: &[u8] = &[0x03, 0x04, 0x01];
const AES: &[u8] = &[0x06, 0xf1, 0x07, 0x01];

/// Largest header read or decoded (real headers are kilobytes; 10,000 files are about 1 MiB).
const MAX_HEADER: u64 = 64 * 1024 * 1024;

struct Coder {
    id: Vec<u8>,
    props: Vec<u8>,
}

struct Folder {
    coders: Vec<Coder>,
    unpack_sizes: Vec<u64>,
    crc_defined: bool,
}

struct StreamsInfo {
    pack_pos: u64,
    pack_sizes: Vec<u64>,
    folders: Vec<Folder>,
}

/// Where the archive ends: the signature header, the packed streams and the header after them.
pub(crate) fn extent(input: &mut dyn Input) -> u64 {
    let Ok(start) = input.read_at(0, 32, "7z") else { return input.len() };
    let offset = u64::from_le_bytes(start[12..20].try_into().unwrap_or_default());
    let size = u64::from_le_bytes(start[20..28].try_into().unwrap_or_default());
    32u64.saturating_add(offset).saturating_add(size).min(input.len())
}

/// Checks every coder of the archive against `max_memory` bytes of decoder state.
pub(crate) fn check(input: &mut dyn Input, max_memory: u64) -> Result<(), Problem> {
    let start = input.read_at(0, 32, "7z").map_err(|_| malformed("no signature header"))?.into_owned();
    let offset = u64::from_le_bytes(start[12..20].try_into().unwrap_or_default());
    let size = u64::from_le_bytes(start[20..28].try_into().unwrap_or_default());
    if size == 0 {
        // An empty archive has a valid start header; a zeroed one sends the crate searching the
        // tail for a header it parses unchecked (as 7-Zip's recovery does): refused.
        let crc = u32::from_le_bytes(start[8..12].try_into().unwrap_or_default());
        if crc == 0 || crc != crc32fast::hash(&start[12..32]) {
            return Err(Problem::Unsupported("7z without a valid start header".into()));
        }
        return Ok(());
    }
    if size > MAX_HEADER {
        return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: MAX_HEADER });
    }
    let at = 32u64.checked_add(offset).ok_or_else(|| malformed("header offset overflows"))?;
    let header = input.read_at(at, size as usize, "7z").map_err(|_| malformed("header past the end of the file"))?.into_owned();
    let mut r = Reader { data: &header, at: 0 };
    match r.byte()? {
        K_HEADER => main_streams(&mut r, max_memory),
        K_ENCODED_HEADER => {
            let info = streams_info(&mut r)?;
            check_folders(&info.folders, max_memory)?;
            // Decode the header (one LZMA or LZMA2 coder, as 7-Zip writes it) under the same
            // bound, and check the main streams' coders inside it.
            let (Some(folder), Some(&packed)) = (info.folders.first(), info.pack_sizes.first()) else { return Ok(()) };
            let unpacked = folder.unpack_sizes.last().copied().unwrap_or(0);
            if folder.coders.len() != 1 || unpacked > MAX_HEADER {
                // 7-Zip codes headers with one LZMA coder: anything else could hide the main
                // streams' coders from this check.
                return Err(Problem::Unsupported("7z header coded with an unusual coder chain".into()));
            }
            let pack_at = 32u64.saturating_add(info.pack_pos);
            let packed_bytes =
                input.read_at(pack_at, packed.min(MAX_HEADER) as usize, "7z").map_err(|_| malformed("packed header past the end"))?;
            let decoded = decode_header(&folder.coders[0], &packed_bytes, unpacked)?;
            let mut r = Reader { data: &decoded, at: 0 };
            if r.byte()? != K_HEADER {
                return Err(malformed("encoded header does not decode to a header"));
            }
            main_streams(&mut r, max_memory)
        }
        other => Err(malformed(&format!("unknown header type {other:#x}"))),
    }
}

fn main_streams(r: &mut Reader<'_>, max_memory: u64) -> Result<(), Problem> {
    let mut id = r.byte()?;
    if id == K_ARCHIVE_PROPERTIES {
        loop {
            let kind = r.byte()?;
            if kind == K_END {
                break;
            }
            let len = r.number()?;
            r.skip(len)?;
        }
        id = r.byte()?;
    }
    if id == K_MAIN_STREAMS_INFO {
        let info = streams_info(r)?;
        check_folders(&info.folders, max_memory)?;
        id = r.byte()?;
    }
    if id == K_FILES_INFO {
        // The crate allocates a table of this many entries before reading one: every entry
        // needs bytes of the header, so more entries than header bytes is a lie.
        if r.count()? > r.data.len() as u64 {
            return Err(malformed("more files than the header holds"));
        }
    }
    Ok(())
}

fn check_folders(folders: &[Folder], max_memory: u64) -> Result<(), Problem> {
    for folder in folders {
        let largest_output = folder.unpack_sizes.iter().copied().max().unwrap_or(0);
        for coder in &folder.coders {
            let id = coder.id.as_slice();
            if id == AES {
                return Err(Problem::Encrypted("7z content is encrypted".into()));
            }
            let memory = if id == LZMA {
                let dict = coder.props.get(1..5).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
                dict.min(largest_output)
            } else if id == LZMA2 {
                match coder.props.first() {
                    Some(&bits) if bits > 40 => u64::MAX,
                    Some(&40) => u32::MAX as u64,
                    Some(&bits) => (2 | (bits as u64 & 1)) << (bits / 2 + 11),
                    None => 0,
                }
            } else if id == PPMD {
                coder.props.get(1..5).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
            } else {
                0
            };
            if memory > max_memory {
                return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: max_memory });
            }
        }
    }
    Ok(())
}

fn decode_header(coder: &Coder, packed: &[u8], unpacked: u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::with_capacity(unpacked as usize);
    let result = if coder.id == LZMA {
        let props = coder.props.first().copied().unwrap_or(0);
        let dict = coder.props.get(1..5).map_or(4096, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).min(unpacked as u32).max(4096);
        lzma_rust2::LzmaReader::new_with_props(packed, unpacked, props, dict, None)
            .and_then(|mut d| (&mut d).take(unpacked).read_to_end(&mut out))
    } else if coder.id == LZMA2 {
        let bits = coder.props.first().copied().unwrap_or(0).min(40) as u32;
        let dict = if bits == 40 { u32::MAX } else { (2 | (bits & 1)) << (bits / 2 + 11) };
        let mut d = lzma_rust2::Lzma2Reader::new(packed, dict.min(unpacked.max(4096) as u32), None);
        (&mut d).take(unpacked).read_to_end(&mut out)
    } else {
        return Err(Problem::Unsupported("7z header coded with an unusual coder".into()));
    };
    result.map_err(|e| malformed(&format!("encoded header does not decode: {e}")))?;
    Ok(out)
}

fn streams_info(r: &mut Reader<'_>) -> Result<StreamsInfo, Problem> {
    let mut info = StreamsInfo { pack_pos: 0, pack_sizes: Vec::new(), folders: Vec::new() };
    loop {
        match r.byte()? {
            K_END => return Ok(info),
            K_PACK_INFO => {
                info.pack_pos = r.number()?;
                let count = r.count()?;
                loop {
                    match r.byte()? {
                        K_END => break,
                        K_SIZE => {
                            for _ in 0..count {
                                info.pack_sizes.push(r.number()?);
                            }
                        }
                        K_CRC => {
                            r.digests(count)?;
                        }
                        _ => return Err(malformed("unexpected record in pack info")),
                    }
                }
            }
            K_UNPACK_INFO => {
                if r.byte()? != K_FOLDER {
                    return Err(malformed("unpack info without folders"));
                }
                let count = r.count()?;
                if r.byte()? != 0 {
                    return Err(malformed("external folders"));
                }
                for _ in 0..count {
                    info.folders.push(folder(r)?);
                }
                if r.byte()? != K_CODERS_UNPACK_SIZE {
                    return Err(malformed("folders without unpack sizes"));
                }
                for folder in info.folders.iter_mut() {
                    let outputs = folder.unpack_sizes.len();
                    folder.unpack_sizes.clear();
                    for _ in 0..outputs {
                        folder.unpack_sizes.push(r.number()?);
                    }
                }
                loop {
                    match r.byte()? {
                        K_END => break,
                        K_CRC => {
                            for (folder, defined) in info.folders.iter_mut().zip(r.digests(count)?) {
                                folder.crc_defined = defined;
                            }
                        }
                        _ => return Err(malformed("unexpected record in unpack info")),
                    }
                }
            }
            // Sub-streams hold no coder, but their counts size the crate's tables: bounded.
            K_SUBSTREAMS_INFO => substreams(r, &info.folders)?,
            _ => return Err(malformed("unexpected record in streams info")),
        }
    }
}

fn substreams(r: &mut Reader<'_>, folders: &[Folder]) -> Result<(), Problem> {
    let mut per_folder = vec![1u64; folders.len()];
    loop {
        match r.byte()? {
            K_END => return Ok(()),
            K_NUM_UNPACK_STREAM => {
                for n in per_folder.iter_mut() {
                    *n = r.count()?;
                }
            }
            K_SIZE => {
                for &n in &per_folder {
                    for _ in 1..n {
                        r.number()?;
                    }
                }
            }
            K_CRC => {
                let unknown: u64 = folders.iter().zip(&per_folder).map(|(f, &n)| if n == 1 && f.crc_defined { 0 } else { n }).sum();
                if unknown > r.data.len() as u64 {
                    return Err(malformed("more digests than the header holds"));
                }
                r.digests(unknown)?;
            }
            _ => return Err(malformed("unexpected record in sub-streams info")),
        }
    }
}

fn folder(r: &mut Reader<'_>) -> Result<Folder, Problem> {
    let count = r.count()?;
    let mut coders = Vec::new();
    let (mut total_in, mut total_out) = (0u64, 0u64);
    for _ in 0..count {
        let flags = r.byte()?;
        if flags & 0x80 != 0 {
            return Err(Problem::Unsupported("7z alternative coder methods".into()));
        }
        let id = r.bytes((flags & 0x0f) as u64)?.to_vec();
        let (inputs, outputs) = if flags & 0x10 != 0 { (r.number()?, r.number()?) } else { (1, 1) };
        let props = if flags & 0x20 != 0 {
            let len = r.number()?;
            r.bytes(len)?.to_vec()
        } else {
            Vec::new()
        };
        total_in = total_in.saturating_add(inputs);
        total_out = total_out.saturating_add(outputs);
        if total_in > 64 || total_out > 64 {
            return Err(malformed("too many coder streams"));
        }
        coders.push(Coder { id, props });
    }
    let bind_pairs = total_out.saturating_sub(1);
    for _ in 0..bind_pairs {
        r.number()?;
        r.number()?;
    }
    let packed = total_in.saturating_sub(bind_pairs);
    if packed > 1 {
        for _ in 0..packed {
            r.number()?;
        }
    }
    // Placeholders, one per output stream: filled from CodersUnpackSize.
    Ok(Folder { coders, unpack_sizes: vec![0; total_out as usize], crc_defined: false })
}

fn malformed(why: &str) -> Problem {
    Problem::Malformed(format!("7z: {why}"))
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Problem> {
        let b = *self.data.get(self.at).ok_or_else(|| malformed("header ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8], Problem> {
        let end = self
            .at
            .checked_add(usize::try_from(n).map_err(|_| malformed("length overflows"))?)
            .ok_or_else(|| malformed("length overflows"))?;
        let out = self.data.get(self.at..end).ok_or_else(|| malformed("header ends early"))?;
        self.at = end;
        Ok(out)
    }

    fn skip(&mut self, n: u64) -> Result<(), Problem> {
        self.bytes(n).map(|_| ())
    }

    /// 7z's variable-length number: the leading one bits of the first byte count extra bytes.
    fn number(&mut self) -> Result<u64, Problem> {
        let first = self.byte()?;
        let mut mask = 0x80u8;
        let mut value = 0u64;
        for i in 0..8 {
            if first & mask == 0 {
                let high = (first & mask.wrapping_sub(1)) as u64;
                return Ok(value | (high << (8 * i)));
            }
            value |= (self.byte()? as u64) << (8 * i);
            mask >>= 1;
        }
        Ok(value)
    }

    /// A count of records, bounded by what the header could hold.
    fn count(&mut self) -> Result<u64, Problem> {
        let n = self.number()?;
        if n > self.data.len() as u64 {
            return Err(malformed("count larger than the header"));
        }
        Ok(n)
    }

    /// A digests record for `n` items: which are defined (their CRCs are skipped).
    fn digests(&mut self, n: u64) -> Result<Vec<bool>, Problem> {
        let all = self.byte()?;
        let defined: Vec<bool> = if all != 0 {
            vec![true; n as usize]
        } else {
            let bits = self.bytes(n.div_ceil(8))?;
            (0..n as usize).map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0).collect()
        };
        let count = defined.iter().filter(|d| **d).count() as u64;
        self.skip(count.saturating_mul(4))?;
        Ok(defined)
    }
}
