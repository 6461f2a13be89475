//! Hard limits on every allocation and walk that input bytes can drive.

/// Bounds on what one extraction may allocate or visit. Exceeding one is a typed
/// [`ExtractError::LimitExceeded`](crate::ExtractError::LimitExceeded) naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the push interface ([`Inspector`](crate::Inspector)) keeps in memory for one file.
    pub max_buffered_bytes: u64,
    /// Decompressed size of one metadata part or stream (custom.xml, LabelInfo, .rels, XMP,
    /// a PDF object or xref stream, a CFB stream).
    pub max_part_bytes: u64,
    /// Entries in a ZIP central directory.
    pub max_zip_entries: u64,
    /// Size of a ZIP central directory.
    pub max_central_directory_bytes: u64,
    /// XML element nesting depth in a metadata part.
    pub max_xml_depth: usize,
    /// Raw label records kept per file.
    pub max_records: usize,
    /// PDF objects resolved while looking for labels.
    pub max_pdf_objects: usize,
    /// PDF revisions (xref sections chained by `/Prev`) followed.
    pub max_pdf_revisions: usize,
    /// Nesting depth of PDF arrays and dictionaries.
    pub max_pdf_depth: usize,
    /// Bytes one PDF object (outside its stream data) may span.
    pub max_pdf_object_bytes: u64,
    /// Bytes of a damaged PDF scanned when its cross-reference data must be reconstructed.
    pub max_pdf_reconstruct_bytes: u64,
    /// Entries in a CFB directory.
    pub max_cfb_directory_entries: u64,
    /// Sectors in a CFB allocation table (FAT) and sectors walked along one chain.
    pub max_cfb_sectors: u64,
    /// Bytes of an e-mail header block.
    pub max_header_bytes: u64,
    /// Bytes of a package decrypted with a password that is no secret (Excel's default one).
    pub max_decrypted_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_buffered_bytes: 512 * 1024 * 1024,
            max_part_bytes: 8 * 1024 * 1024,
            max_zip_entries: 200_000,
            max_central_directory_bytes: 64 * 1024 * 1024,
            max_xml_depth: 256,
            max_records: 1024,
            max_pdf_objects: 4096,
            max_pdf_revisions: 512,
            max_pdf_depth: 64,
            max_pdf_object_bytes: 4 * 1024 * 1024,
            max_pdf_reconstruct_bytes: 256 * 1024 * 1024,
            max_cfb_directory_entries: 100_000,
            max_cfb_sectors: 16 * 1024 * 1024,
            max_header_bytes: 1024 * 1024,
            max_decrypted_bytes: 256 * 1024 * 1024,
        }
    }
}
