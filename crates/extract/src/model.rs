//! The answer an extraction gives: what the bytes are, which labels are in force, and every raw
//! label record found on the way, with where it came from and why it counts or not.

use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// What the bytes are, decided by content (magic bytes and container structure), never by name.
///
/// The string forms (`as_str`, serde) are stable: policy files and audit records use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Word document (`.docx`).
    Docx,
    /// Word macro-enabled document (`.docm`).
    Docm,
    /// Word template (`.dotx`).
    Dotx,
    /// Word macro-enabled template (`.dotm`).
    Dotm,
    /// Excel workbook (`.xlsx`).
    Xlsx,
    /// Excel macro-enabled workbook (`.xlsm`).
    Xlsm,
    /// Excel template (`.xltx`).
    Xltx,
    /// Excel macro-enabled template (`.xltm`).
    Xltm,
    /// Excel binary workbook (`.xlsb`).
    Xlsb,
    /// Excel add-in (`.xlam`).
    Xlam,
    /// PowerPoint presentation (`.pptx`).
    Pptx,
    /// PowerPoint macro-enabled presentation (`.pptm`).
    Pptm,
    /// PowerPoint template (`.potx`).
    Potx,
    /// PowerPoint macro-enabled template (`.potm`).
    Potm,
    /// PowerPoint show (`.ppsx`).
    Ppsx,
    /// PowerPoint macro-enabled show (`.ppsm`).
    Ppsm,
    /// Visio drawing (`.vsdx`).
    Vsdx,
    /// Visio macro-enabled drawing (`.vsdm`).
    Vsdm,
    /// Any other OPC package (a ZIP with `[Content_Types].xml`).
    Ooxml,
    /// A ZIP archive that is not an OPC package.
    Zip,
    /// PDF document.
    Pdf,
    /// OOXML encrypted with rights management (IRM / sensitivity-label protection) inside a
    /// compound file: the label may be readable in the clear.
    ProtectedOoxml,
    /// OOXML encrypted with a password inside a compound file: no label is readable.
    EncryptedOoxml,
    /// Legacy Word 97-2003 (`.doc`).
    Doc,
    /// Legacy Excel 97-2003 (`.xls`).
    Xls,
    /// Legacy PowerPoint 97-2003 (`.ppt`).
    Ppt,
    /// Outlook message (`.msg`).
    Msg,
    /// Any other compound file (OLE2).
    Cfb,
    /// RFC 5322 e-mail message (`.eml`).
    Eml,
    /// gzip-compressed data (`.gz`, `.tgz`): one inner file.
    Gzip,
    /// bzip2-compressed data (`.bz2`): one inner file.
    Bzip2,
    /// xz-compressed data (`.xz`): one inner file.
    Xz,
    /// Zstandard-compressed data (`.zst`): one inner file.
    Zstd,
    /// A tar archive (ustar, pax, GNU).
    Tar,
    /// A cpio archive (odc, newc, old binary; macOS `.cpio`/`.cpgz`).
    Cpio,
    /// A Unix `ar` archive.
    Ar,
    /// LZMA-compressed data in the legacy `.lzma` ("LZMA alone") format: one inner file.
    Lzma,
    /// A 7-Zip archive.
    #[serde(rename = "7z")]
    SevenZ,
    /// A RAR archive (recognised, not opened).
    Rar,
    /// A TNEF attachment (`winmail.dat`), opened by `labelgate-unpack`.
    Tnef,
    /// Unix `compress` (`.Z`) data (recognised, not opened).
    Compress,
    /// A Microsoft cabinet (`.cab`; recognised, not opened).
    Cab,
    /// A Windows imaging (`.wim`) archive (recognised, not opened).
    Wim,
    /// An LZ4 frame (recognised, not opened).
    Lz4,
    /// Not a format labels are read from.
    Unknown,
}

impl FileKind {
    /// The stable lowercase name (`docx`, `pdf`, `protected_ooxml`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Docx => "docx",
            FileKind::Docm => "docm",
            FileKind::Dotx => "dotx",
            FileKind::Dotm => "dotm",
            FileKind::Xlsx => "xlsx",
            FileKind::Xlsm => "xlsm",
            FileKind::Xltx => "xltx",
            FileKind::Xltm => "xltm",
            FileKind::Xlsb => "xlsb",
            FileKind::Xlam => "xlam",
            FileKind::Pptx => "pptx",
            FileKind::Pptm => "pptm",
            FileKind::Potx => "potx",
            FileKind::Potm => "potm",
            FileKind::Ppsx => "ppsx",
            FileKind::Ppsm => "ppsm",
            FileKind::Vsdx => "vsdx",
            FileKind::Vsdm => "vsdm",
            FileKind::Ooxml => "ooxml",
            FileKind::Zip => "zip",
            FileKind::Pdf => "pdf",
            FileKind::ProtectedOoxml => "protected_ooxml",
            FileKind::EncryptedOoxml => "encrypted_ooxml",
            FileKind::Doc => "doc",
            FileKind::Xls => "xls",
            FileKind::Ppt => "ppt",
            FileKind::Msg => "msg",
            FileKind::Cfb => "cfb",
            FileKind::Eml => "eml",
            FileKind::Gzip => "gzip",
            FileKind::Bzip2 => "bzip2",
            FileKind::Xz => "xz",
            FileKind::Zstd => "zstd",
            FileKind::Tar => "tar",
            FileKind::Cpio => "cpio",
            FileKind::Ar => "ar",
            FileKind::Lzma => "lzma",
            FileKind::SevenZ => "7z",
            FileKind::Rar => "rar",
            FileKind::Tnef => "tnef",
            FileKind::Compress => "compress",
            FileKind::Cab => "cab",
            FileKind::Wim => "wim",
            FileKind::Lz4 => "lz4",
            FileKind::Unknown => "unknown",
        }
    }

    /// Every kind, in declaration order (for documentation and policy validation).
    pub const ALL: [FileKind; 45] = [
        FileKind::Docx,
        FileKind::Docm,
        FileKind::Dotx,
        FileKind::Dotm,
        FileKind::Xlsx,
        FileKind::Xlsm,
        FileKind::Xltx,
        FileKind::Xltm,
        FileKind::Xlsb,
        FileKind::Xlam,
        FileKind::Pptx,
        FileKind::Pptm,
        FileKind::Potx,
        FileKind::Potm,
        FileKind::Ppsx,
        FileKind::Ppsm,
        FileKind::Vsdx,
        FileKind::Vsdm,
        FileKind::Ooxml,
        FileKind::Zip,
        FileKind::Pdf,
        FileKind::ProtectedOoxml,
        FileKind::EncryptedOoxml,
        FileKind::Doc,
        FileKind::Xls,
        FileKind::Ppt,
        FileKind::Msg,
        FileKind::Cfb,
        FileKind::Eml,
        FileKind::Gzip,
        FileKind::Bzip2,
        FileKind::Xz,
        FileKind::Zstd,
        FileKind::Tar,
        FileKind::Cpio,
        FileKind::Ar,
        FileKind::Lzma,
        FileKind::SevenZ,
        FileKind::Rar,
        FileKind::Tnef,
        FileKind::Compress,
        FileKind::Cab,
        FileKind::Wim,
        FileKind::Lz4,
        FileKind::Unknown,
    ];

    /// Parses the stable name back into a kind.
    pub fn from_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a raw label record was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Source {
    /// OOXML `docProps/custom.xml` `MSIP_Label_*` custom properties.
    #[serde(rename = "custom-props")]
    CustomProps,
    /// OOXML `docMetadata/LabelInfo.xml` (the classification-labels part).
    #[serde(rename = "labelinfo")]
    LabelInfo,
    /// The `\x06DataSpaces/TransformInfo/LabelInfo` stream of a protected compound file.
    #[serde(rename = "cfb")]
    CfbLabelInfo,
    /// User-defined properties of a compound file's `\x05DocumentSummaryInformation` stream.
    #[serde(rename = "ole-props")]
    OleProps,
    /// The PDF document information dictionary (`/Info`).
    #[serde(rename = "pdf-info")]
    PdfInfo,
    /// The PDF catalog's XMP metadata stream (`pdfx:MSIP_Label_*`).
    #[serde(rename = "pdf-xmp")]
    PdfXmp,
    /// The `msip_labels` header (or per-attribute headers) of an e-mail message.
    #[serde(rename = "eml")]
    Eml,
    /// The `msip_labels` named property or transport headers of an Outlook `.msg`.
    #[serde(rename = "msg")]
    Msg,
}

impl Source {
    /// The stable name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::CustomProps => "custom-props",
            Source::LabelInfo => "labelinfo",
            Source::CfbLabelInfo => "cfb",
            Source::OleProps => "ole-props",
            Source::PdfInfo => "pdf-info",
            Source::PdfXmp => "pdf-xmp",
            Source::Eml => "eml",
            Source::Msg => "msg",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a raw record does or does not contribute an effective label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Enabled, not removed, not shadowed: an effective label.
    Effective,
    /// The metadata marks it disabled (`Enabled=false`, `enabled="0"`).
    Disabled,
    /// A LabelInfo tombstone (`removed="1"`): this tenant has no label.
    Removed,
    /// A custom property of a tenant that LabelInfo also describes: LabelInfo wins (MS-OFFCRYPTO 2.6.3).
    Stale,
    /// Found only in a superseded PDF revision (an older `/Info` or XMP of an incremental update).
    Superseded,
    /// A label part that Office would not read (not reached through the package relationships).
    Orphan,
    /// The `Enabled` value is not a boolean; reported with the `ambiguous` flag.
    Malformed,
    /// No `Enabled` attribute at all (e.g. only `_Extended_*` vendor keys): not a label assertion.
    Incomplete,
}

/// A label record exactly as one metadata location states it, after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelRecord {
    /// Label GUID, lowercase, without braces.
    pub id: String,
    /// Tenant (Entra directory) GUID, lowercase, without braces, when stated.
    pub site_id: Option<String>,
    /// `Enabled` as stated; `None` when missing or malformed.
    pub enabled: Option<bool>,
    /// LabelInfo `removed` marker.
    pub removed: bool,
    /// `Method` (`Standard`, `Privileged`, …) when stated and not empty.
    pub method: Option<String>,
    /// `Name`: the label's internal name when stated (never use it for matching).
    pub name: Option<String>,
    /// `ContentBits` when stated.
    pub content_bits: Option<u32>,
    /// `SetDate` when stated, verbatim.
    pub set_date: Option<String>,
    /// `Parent` label GUID (legacy AIP) when stated.
    pub parent: Option<String>,
    /// Where it was read.
    pub source: Source,
    /// Whether it contributes an effective label, and if not, why.
    pub status: RecordStatus,
}

/// A label in force on the file: what policy acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveLabel {
    /// Label GUID, lowercase, without braces.
    pub id: String,
    /// Tenant GUID when the metadata states it.
    pub site_id: Option<String>,
    /// Internal `Name` when any contributing record states it.
    pub name: Option<String>,
    /// `Method` when any contributing record states it.
    pub method: Option<String>,
    /// The location of the record that decided it.
    pub source: Source,
}

/// A condition that policy should weigh beside the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The content is encrypted and no label could be read from it (password encryption).
    Encrypted,
    /// The content is rights-management protected (IRM); labels in the clear were still read.
    Protected,
    /// The structure could hide a label from this reader but not from Office (container
    /// disagreements, duplicate label parts, DTDs, malformed label values). See `findings`.
    Ambiguous,
}

impl Flag {
    /// The stable name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Encrypted => "encrypted",
            Flag::Protected => "protected",
            Flag::Ambiguous => "ambiguous",
        }
    }
}

/// The result of reading one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extraction {
    /// What the bytes are.
    pub kind: FileKind,
    /// Effective labels, sorted by id: every label the metadata marks enabled after precedence.
    pub labels: Vec<EffectiveLabel>,
    /// Conditions for policy (encrypted, protected, ambiguous).
    pub flags: BTreeSet<Flag>,
    /// Every raw record found, in reading order.
    pub records: Vec<LabelRecord>,
    /// Human-readable explanations for the flags and anything odd that was seen.
    pub findings: Vec<String>,
}

impl Extraction {
    /// An empty answer for a file of `kind` (no labels, no flags).
    pub fn new(kind: FileKind) -> Extraction {
        Extraction { kind, labels: Vec::new(), flags: BTreeSet::new(), records: Vec::new(), findings: Vec::new() }
    }

    /// True when the file carries at least one effective label.
    pub fn is_labeled(&self) -> bool {
        !self.labels.is_empty()
    }

    /// True when `flag` is set.
    pub fn has_flag(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// Sets the `ambiguous` flag and records why.
    pub fn ambiguous(&mut self, why: impl Into<String>) {
        self.flags.insert(Flag::Ambiguous);
        self.finding(why);
    }

    /// Records an observation; bounded so hostile input cannot grow the list without limit.
    pub fn finding(&mut self, why: impl Into<String>) {
        const MAX_FINDINGS: usize = 64;
        if self.findings.len() < MAX_FINDINGS {
            let why = why.into();
            if !self.findings.contains(&why) {
                self.findings.push(why);
            }
        }
    }

    /// Derives `labels` from the records whose status is `Effective`, merging duplicates of one
    /// label id (and tenant) and keeping the first location that stated it.
    pub(crate) fn finalize(&mut self) {
        let mut labels: Vec<EffectiveLabel> = Vec::new();
        for record in self.records.iter().filter(|r| r.status == RecordStatus::Effective) {
            if let Some(existing) = labels
                .iter_mut()
                .find(|l| l.id == record.id && (l.site_id == record.site_id || l.site_id.is_none() || record.site_id.is_none()))
            {
                if existing.site_id.is_none() {
                    existing.site_id = record.site_id.clone();
                }
                if existing.name.is_none() {
                    existing.name = record.name.clone();
                }
                if existing.method.is_none() {
                    existing.method = record.method.clone();
                }
                continue;
            }
            labels.push(EffectiveLabel {
                id: record.id.clone(),
                site_id: record.site_id.clone(),
                name: record.name.clone(),
                method: record.method.clone(),
                source: record.source,
            });
        }
        // LabelInfo states no names; a stale custom property of the very same label often does.
        for label in labels.iter_mut().filter(|l| l.name.is_none()) {
            label.name = self
                .records
                .iter()
                .find(|r| r.id == label.id && r.site_id == label.site_id && r.name.is_some())
                .and_then(|r| r.name.clone());
        }
        labels.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.site_id.cmp(&b.site_id)));
        self.labels = labels;
    }
}
