//! Compound File Binary (OLE2) reader: header, lazily-read FAT, directory, regular and mini
//! streams. Every chain walk is bounded and loop-checked; the directory tree is searched without
//! trusting its red-black ordering.

use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;

pub(crate) const MAGIC: &[u8; 8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
const FREESECT: u32 = 0xFFFF_FFFF;
const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const NOSTREAM: u32 = 0xFFFF_FFFF;
const MAX_REGULAR_SECTOR: u32 = 0xFFFF_FFFA;

fn malformed(reason: impl Into<String>) -> ExtractError {
    ExtractError::malformed("cfb", reason)
}

fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// One directory entry.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub name: String,
    /// 1 storage, 2 stream, 5 root.
    pub kind: u8,
    pub left: u32,
    pub right: u32,
    pub child: u32,
    pub start: u32,
    pub size: u64,
}

pub(crate) struct Cfb<'i> {
    input: &'i mut dyn Input,
    sector_size: u64,
    mini_cutoff: u64,
    /// Sector numbers of the FAT sectors, in order (from the DIFAT).
    fat_sectors: Vec<u32>,
    fat_cache: Option<(u32, Vec<u32>)>,
    pub entries: Vec<DirEntry>,
    mini_fat: Option<Vec<u32>>,
    mini_stream_sectors: Option<Vec<u32>>,
    mini_fat_first: Option<(u32, u64)>,
    max_sectors: u64,
    max_part_bytes: u64,
}

impl<'i> Cfb<'i> {
    pub(crate) fn open(input: &'i mut dyn Input, limits: &Limits) -> Result<Cfb<'i>, ExtractError> {
        let header = input.read_at(0, 512, "cfb")?.into_owned();
        if &header[..8] != MAGIC {
            return Err(malformed("not a compound file"));
        }
        let shift = u16le(&header, 0x1E);
        let sector_size: u64 = match shift {
            9 => 512,
            12 => 4096,
            _ => return Err(malformed(format!("unsupported sector shift {shift}"))),
        };
        if u16le(&header, 0x20) != 6 {
            return Err(malformed("unsupported mini sector shift"));
        }
        let num_fat = u32le(&header, 0x2C) as u64;
        let first_dir = u32le(&header, 0x30);
        let mini_cutoff = u32le(&header, 0x38) as u64;
        let first_mini_fat = u32le(&header, 0x3C);
        let num_mini_fat = u32le(&header, 0x40) as u64;
        let mut difat_next = u32le(&header, 0x44);
        let num_difat = u32le(&header, 0x48) as u64;
        let per_sector = sector_size / 4;
        if num_fat.saturating_mul(per_sector) > limits.max_cfb_sectors {
            return Err(ExtractError::limit("max_cfb_sectors", limits.max_cfb_sectors));
        }
        let file_sectors = input.len() / sector_size + 1;
        if num_fat > file_sectors || num_difat > file_sectors || num_mini_fat > file_sectors {
            return Err(malformed("header counts more sectors than the file holds"));
        }

        let mut fat_sectors = Vec::with_capacity(num_fat.min(4096) as usize);
        for i in 0..109usize {
            let s = u32le(&header, 0x4C + i * 4);
            if s <= MAX_REGULAR_SECTOR && (fat_sectors.len() as u64) < num_fat {
                fat_sectors.push(s);
            }
        }
        let mut difat_steps = 0u64;
        while (fat_sectors.len() as u64) < num_fat && difat_next <= MAX_REGULAR_SECTOR {
            difat_steps += 1;
            if difat_steps > num_difat.max(1) + 1 {
                return Err(malformed("DIFAT chain longer than declared"));
            }
            let offset = (difat_next as u64 + 1) * sector_size;
            let sector = input.read_at(offset, sector_size as usize, "cfb")?.into_owned();
            for i in 0..(per_sector as usize - 1) {
                let s = u32le(&sector, i * 4);
                if s <= MAX_REGULAR_SECTOR && (fat_sectors.len() as u64) < num_fat {
                    fat_sectors.push(s);
                }
            }
            difat_next = u32le(&sector, (per_sector as usize - 1) * 4);
        }

        let mut cfb = Cfb {
            input,
            sector_size,
            mini_cutoff,
            fat_sectors,
            fat_cache: None,
            entries: Vec::new(),
            mini_fat: None,
            mini_stream_sectors: None,
            mini_fat_first: None,
            max_sectors: limits.max_cfb_sectors,
            max_part_bytes: limits.max_part_bytes,
        };

        // Directory: 128-byte entries along the directory chain.
        let dir_chain = cfb.chain(first_dir, None)?;
        let per_dir_sector = (sector_size / 128) as usize;
        if (dir_chain.len() * per_dir_sector) as u64 > limits.max_cfb_directory_entries.saturating_add(per_dir_sector as u64) {
            return Err(ExtractError::limit("max_cfb_directory_entries", limits.max_cfb_directory_entries));
        }
        let mut entries = Vec::new();
        for s in dir_chain {
            let sector = cfb.sector(s)?;
            for i in 0..per_dir_sector {
                let e = &sector[i * 128..(i + 1) * 128];
                let name_len = (u16le(e, 0x40) as usize).min(64);
                let units: Vec<u16> = e[..name_len.saturating_sub(2)].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                let name = String::from_utf16_lossy(&units);
                let kind = e[0x42];
                let size_low = u32le(e, 0x78) as u64;
                let size_high = u32le(e, 0x7C) as u64;
                // Version 3 files may hold garbage in the high size word.
                let size = if sector_size == 512 { size_low } else { size_low | (size_high << 32) };
                entries.push(DirEntry {
                    name,
                    kind,
                    left: u32le(e, 0x44),
                    right: u32le(e, 0x48),
                    child: u32le(e, 0x4C),
                    start: u32le(e, 0x74),
                    size,
                });
            }
        }
        if entries.first().map(|e| e.kind) != Some(5) {
            return Err(malformed("first directory entry is not the root"));
        }
        cfb.entries = entries;
        cfb.mini_fat_first = Some((first_mini_fat, num_mini_fat));
        Ok(cfb)
    }

    fn sector(&mut self, s: u32) -> Result<Vec<u8>, ExtractError> {
        let offset = (s as u64 + 1) * self.sector_size;
        Ok(self.input.read_at(offset, self.sector_size as usize, "cfb")?.into_owned())
    }

    fn fat_entry(&mut self, s: u32) -> Result<u32, ExtractError> {
        let per = (self.sector_size / 4) as u32;
        let which = s / per;
        if self.fat_cache.as_ref().map(|(w, _)| *w) != Some(which) {
            let Some(&fat_sector) = self.fat_sectors.get(which as usize) else {
                return Err(malformed(format!("sector {s} is beyond the allocation table")));
            };
            let data = self.sector(fat_sector)?;
            let table = data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            self.fat_cache = Some((which, table));
        }
        let table = &self.fat_cache.as_ref().map(|(_, t)| t).ok_or_else(|| malformed("allocation table"))?;
        Ok(table[(s % per) as usize])
    }

    /// Bytes the compound file accounts for: the header and every sector its allocation table
    /// marks in use (what follows is data appended to the file).
    pub(crate) fn extent(&mut self) -> Result<u64, ExtractError> {
        let per = (self.sector_size / 4) as usize;
        let mut last_used: Option<u64> = None;
        for (n, &fat_sector) in self.fat_sectors.clone().iter().enumerate() {
            let data = self.sector(fat_sector)?;
            for (i, c) in data.chunks_exact(4).enumerate() {
                if u32::from_le_bytes([c[0], c[1], c[2], c[3]]) != FREESECT {
                    last_used = Some((n * per + i) as u64);
                }
            }
        }
        Ok(last_used.map_or(self.sector_size, |s| (s + 2) * self.sector_size))
    }

    /// Sector numbers along a FAT chain, stopping after `want` sectors when given.
    fn chain(&mut self, start: u32, want: Option<u64>) -> Result<Vec<u32>, ExtractError> {
        let mut out = Vec::new();
        let mut s = start;
        let bound = want.map_or(self.max_sectors, |w| w.min(self.max_sectors));
        let file_sectors = self.input.len() / self.sector_size + 1;
        while s != ENDOFCHAIN && s != FREESECT {
            if s > MAX_REGULAR_SECTOR || s as u64 >= file_sectors {
                return Err(malformed(format!("chain points at sector {s}, outside the file")));
            }
            if out.len() as u64 >= bound {
                if want.is_some() {
                    break;
                }
                return Err(ExtractError::limit("max_cfb_sectors", self.max_sectors));
            }
            if out.len() as u64 > file_sectors {
                return Err(malformed("sector chain loops"));
            }
            out.push(s);
            s = self.fat_entry(s)?;
        }
        Ok(out)
    }

    /// Reads a stream's bytes, capped at `max_part_bytes`.
    pub(crate) fn read_stream(&mut self, index: usize) -> Result<Vec<u8>, ExtractError> {
        self.read_stream_capped(index, self.max_part_bytes, "max_part_bytes")
    }

    /// Reads a stream's bytes, capped at `cap` (a limit named `limit`): attachment data may be
    /// larger than any metadata stream.
    pub(crate) fn read_stream_capped(&mut self, index: usize, cap: u64, limit: &'static str) -> Result<Vec<u8>, ExtractError> {
        let entry = self.entries.get(index).cloned().ok_or_else(|| malformed("no such directory entry"))?;
        if entry.size > cap {
            return Err(ExtractError::limit(limit, cap));
        }
        let size = entry.size as usize;
        if entry.size < self.mini_cutoff && entry.kind != 5 {
            return self.read_mini(entry.start, size);
        }
        let want = entry.size.div_ceil(self.sector_size);
        let chain = self.chain(entry.start, Some(want))?;
        if (chain.len() as u64) < want {
            return Err(malformed(format!("stream {:?} is shorter than its declared size", entry.name)));
        }
        let mut out = Vec::with_capacity(size);
        for s in chain {
            out.extend_from_slice(&self.sector(s)?);
        }
        out.truncate(size);
        Ok(out)
    }

    fn read_mini(&mut self, start: u32, size: usize) -> Result<Vec<u8>, ExtractError> {
        if self.mini_fat.is_none() {
            let (first, count) = self.mini_fat_first.unwrap_or((ENDOFCHAIN, 0));
            let chain = self.chain(first, Some(count))?;
            let mut table = Vec::new();
            for s in chain {
                let data = self.sector(s)?;
                table.extend(data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
            self.mini_fat = Some(table);
            let root = self.entries[0].clone();
            let want = root.size.div_ceil(self.sector_size);
            self.mini_stream_sectors = Some(self.chain(root.start, Some(want))?);
        }
        let mini_fat = self.mini_fat.clone().unwrap_or_default();
        let container = self.mini_stream_sectors.clone().unwrap_or_default();
        let per_sector = (self.sector_size / 64) as usize;
        let mut out = Vec::with_capacity(size);
        let mut m = start;
        let mut steps = 0usize;
        while out.len() < size {
            if m == ENDOFCHAIN || m == FREESECT || steps > mini_fat.len() {
                return Err(malformed("mini stream chain ends early or loops"));
            }
            steps += 1;
            let Some(&sector) = container.get(m as usize / per_sector) else {
                return Err(malformed("mini sector outside the mini stream"));
            };
            let data = self.sector(sector)?;
            let at = (m as usize % per_sector) * 64;
            out.extend_from_slice(&data[at..at + 64]);
            m = *mini_fat.get(m as usize).ok_or_else(|| malformed("mini FAT too short"))?;
        }
        out.truncate(size);
        Ok(out)
    }

    /// Children of a storage (all entries of its sibling tree), bounded and loop-safe.
    pub(crate) fn children(&self, storage: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(root) = self.entries.get(storage) else { return out };
        let mut stack = vec![root.child];
        let mut seen = vec![false; self.entries.len()];
        while let Some(i) = stack.pop() {
            if i == NOSTREAM {
                continue;
            }
            let Some(e) = self.entries.get(i as usize) else { continue };
            if std::mem::replace(&mut seen[i as usize], true) {
                continue;
            }
            out.push(i as usize);
            stack.push(e.left);
            stack.push(e.right);
        }
        out
    }

    /// Children of `storage` whose name equals `name` (CFB names compare case-insensitively).
    pub(crate) fn find(&self, storage: usize, name: &str) -> Vec<usize> {
        self.children(storage).into_iter().filter(|&i| eq_name(&self.entries[i].name, name)).collect()
    }
}

/// CFB compares names by simple uppercase folding.
pub(crate) fn eq_name(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_uppercase).eq(b.chars().flat_map(char::to_uppercase))
}

impl Cfb<'_> {
    /// The last `n` bytes of a stream (all of it if it is shorter): where a ZIP's end record or
    /// a PDF's `startxref` sits. Reads only the sectors that hold them.
    pub(crate) fn read_stream_tail(&mut self, index: usize, n: usize) -> Result<Vec<u8>, ExtractError> {
        let entry = self.entries.get(index).cloned().ok_or_else(|| malformed("no such directory entry"))?;
        if entry.size < self.mini_cutoff && entry.kind != 5 {
            let all = self.read_mini(entry.start, entry.size as usize)?;
            return Ok(all[all.len().saturating_sub(n)..].to_vec());
        }
        let want = entry.size.div_ceil(self.sector_size);
        let chain = self.chain(entry.start, Some(want))?;
        if (chain.len() as u64) < want {
            return Err(malformed(format!("stream {:?} is shorter than its declared size", entry.name)));
        }
        let from = entry.size.saturating_sub(n as u64);
        let first = (from / self.sector_size) as usize;
        let mut out = Vec::with_capacity(n + self.sector_size as usize);
        for &s in &chain[first..] {
            out.extend_from_slice(&self.sector(s)?);
        }
        out.truncate((entry.size - first as u64 * self.sector_size) as usize);
        let skip = (from - first as u64 * self.sector_size) as usize;
        Ok(out.split_off(skip.min(out.len())))
    }

    /// The first `n` bytes of a stream (fewer if it is shorter).
    pub(crate) fn read_stream_prefix(&mut self, index: usize, n: usize) -> Result<Vec<u8>, ExtractError> {
        let entry = self.entries.get(index).cloned().ok_or_else(|| malformed("no such directory entry"))?;
        let size = (entry.size as usize).min(n);
        if entry.size < self.mini_cutoff && entry.kind != 5 {
            return self.read_mini(entry.start, size);
        }
        let want = (size as u64).div_ceil(self.sector_size);
        let chain = self.chain(entry.start, Some(want))?;
        let mut out = Vec::with_capacity(size);
        for s in chain {
            out.extend_from_slice(&self.sector(s)?);
        }
        out.truncate(size);
        Ok(out)
    }
}
