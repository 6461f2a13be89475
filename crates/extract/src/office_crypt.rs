//! ECMA-376 document encryption ([MS-OFFCRYPTO] 2.3.4.5 standard, 2.3.4.10 agile) opened with
//! the one password that is no secret: `VelvetSweatshop`, which Excel uses when a workbook is
//! encrypted without a password the user chose (a "read-only recommended" or structure-locked
//! save) and tries by itself when opening one, so the file opens without a prompt.
//!
//! Agile key derivation is deliberately slow (100 000 hash rounds by default); the spin count a
//! file asks for is bounded ([`MAX_SPIN_COUNT`]) so that a hostile file cannot buy unbounded work.

use crate::crypto::{aes_cbc_decrypt, aes_ecb_decrypt, HashAlg};
use base64::Engine;

/// Excel's built-in default password.
pub(crate) const DEFAULT_PASSWORD: &str = "VelvetSweatshop";

/// The most hash rounds a file may ask for: 10× Office's default, about 0.3 s here.
pub(crate) const MAX_SPIN_COUNT: u32 = 1_000_000;

/// Why a package could not be decrypted with the default password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotOpened {
    /// The verifier rejects the default password: a password the user chose.
    RealPassword,
    /// An encryption this reader does not know, or a damaged description.
    Unsupported(String),
}

/// The key and how the package is laid out, once the password is verified.
pub(crate) enum PackageKey {
    /// AES-ECB over the whole package.
    Standard { key: Vec<u8> },
    /// AES-CBC per 4096-byte segment with IVs from the key data salt.
    Agile { key: Vec<u8>, salt: Vec<u8>, hash: HashAlg, block: usize },
}

/// Verifies `password` against an `EncryptionInfo` stream.
pub(crate) fn unlock(info: &[u8], password: &str) -> Result<PackageKey, NotOpened> {
    let major = u16_at(info, 0).ok_or_else(|| unsupported("EncryptionInfo too short"))?;
    let minor = u16_at(info, 2).ok_or_else(|| unsupported("EncryptionInfo too short"))?;
    let password: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    match (major, minor) {
        (4, 4) => agile(info.get(8..).unwrap_or_default(), &password),
        (2..=4, 2) => standard(info, &password),
        _ => Err(unsupported(&format!("encryption version {major}.{minor}"))),
    }
}

/// Decrypts an `EncryptedPackage` stream (8-byte size, then ciphertext) into at most
/// `max_bytes` of package.
pub(crate) fn decrypt_package(key: &PackageKey, stream: &[u8], max_bytes: u64) -> Result<Vec<u8>, NotOpened> {
    let size = stream.get(..8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))).ok_or_else(|| unsupported("short package"))?;
    let data = &stream[8..];
    if size > max_bytes || size > data.len() as u64 {
        return Err(unsupported(&format!("declared package size {size} exceeds the stream or the limit")));
    }
    let mut out = match key {
        PackageKey::Standard { key } => {
            let mut buf = data[..data.len() / 16 * 16].to_vec();
            aes_ecb_decrypt(key, &mut buf).ok_or_else(|| unsupported("AES key size"))?;
            buf
        }
        PackageKey::Agile { key, salt, hash, block } => {
            let mut out = Vec::with_capacity(data.len());
            for (i, segment) in data.chunks(4096).enumerate() {
                let iv = fit(&hash.hash(&[salt, &(i as u32).to_le_bytes()]), *block, 0x36);
                let whole = &segment[..segment.len() / 16 * 16];
                out.extend(aes_cbc_decrypt(key, &iv, whole).ok_or_else(|| unsupported("AES key or block size"))?);
            }
            out
        }
    };
    out.truncate(size as usize);
    Ok(out)
}

fn unsupported(why: &str) -> NotOpened {
    NotOpened::Unsupported(why.to_string())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Truncates or pads (with `pad`) to `len` bytes, as [MS-OFFCRYPTO] 2.3.4.11 sizes keys and IVs.
fn fit(bytes: &[u8], len: usize, pad: u8) -> Vec<u8> {
    let mut out = bytes[..bytes.len().min(len)].to_vec();
    out.resize(len, pad);
    out
}

/// 2.3.4.7: standard encryption (AES-128/192/256 ECB, SHA-1, 50 000 rounds).
fn standard(info: &[u8], password: &[u8]) -> Result<PackageKey, NotOpened> {
    let header_size = u32_at(info, 8).ok_or_else(|| unsupported("short header"))? as usize;
    let header = info.get(12..12usize.saturating_add(header_size)).ok_or_else(|| unsupported("short header"))?;
    let alg_id = u32_at(header, 8).unwrap_or(0);
    let alg_hash = u32_at(header, 12).unwrap_or(0);
    let key_bits = u32_at(header, 16).unwrap_or(0);
    if !matches!(alg_id, 0x660E..=0x6610) || !matches!(alg_hash, 0 | 0x8004) {
        return Err(unsupported(&format!("standard encryption algorithm {alg_id:#x} / hash {alg_hash:#x}")));
    }
    if !matches!(key_bits, 128 | 192 | 256) {
        return Err(unsupported(&format!("standard encryption key of {key_bits} bits")));
    }
    let v = &info[12 + header_size..];
    let salt_size = u32_at(v, 0).unwrap_or(0) as usize;
    if salt_size != 16 {
        return Err(unsupported("standard encryption salt is not 16 bytes"));
    }
    let salt = v.get(4..20).ok_or_else(|| unsupported("short verifier"))?;
    let mut verifier = v.get(20..36).ok_or_else(|| unsupported("short verifier"))?.to_vec();
    let mut verifier_hash = v.get(40..72).ok_or_else(|| unsupported("short verifier"))?.to_vec();

    let sha1 = HashAlg::Sha1;
    let memo_key = [b"standard".as_slice(), salt, password].concat();
    let h = crate::crypto::memoized(&memo_key, || {
        let mut h = sha1.hash(&[salt, password]);
        for i in 0..50_000u32 {
            h = sha1.hash(&[&i.to_le_bytes(), &h]);
        }
        h
    });
    let h = sha1.hash(&[&h, &0u32.to_le_bytes()]);
    let derive = |fill: u8| {
        let mut buf = [fill; 64];
        for (b, x) in buf.iter_mut().zip(&h) {
            *b ^= x;
        }
        sha1.hash(&[&buf])
    };
    let mut x = derive(0x36);
    x.extend(derive(0x5C));
    let key = x[..key_bits as usize / 8].to_vec();

    aes_ecb_decrypt(&key, &mut verifier).ok_or_else(|| unsupported("AES key size"))?;
    aes_ecb_decrypt(&key, &mut verifier_hash).ok_or_else(|| unsupported("AES key size"))?;
    if sha1.hash(&[&verifier]) != verifier_hash[..20] {
        return Err(NotOpened::RealPassword);
    }
    Ok(PackageKey::Standard { key })
}

/// The attributes of the agile description this reader needs.
#[derive(Default)]
struct Attributes {
    salt: Vec<u8>,
    hash: Option<HashAlg>,
    key_bits: usize,
    block: usize,
    hash_size: usize,
    spin: u32,
    cipher_ok: bool,
    verifier_input: Vec<u8>,
    verifier_hash: Vec<u8>,
    key_value: Vec<u8>,
}

fn attributes(e: &quick_xml::events::BytesStart<'_>) -> Attributes {
    let mut a = Attributes { cipher_ok: true, ..Attributes::default() };
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.decode(v).unwrap_or_default();
    for attr in e.attributes().flatten() {
        let value = attr.value.as_ref();
        let text = String::from_utf8_lossy(value);
        match attr.key.local_name().as_ref() {
            b"saltValue" => a.salt = b64(value),
            b"hashAlgorithm" => a.hash = HashAlg::from_name(&text),
            b"keyBits" => a.key_bits = text.parse().unwrap_or(0),
            b"blockSize" => a.block = text.parse().unwrap_or(0),
            b"hashSize" => a.hash_size = text.parse().unwrap_or(0),
            b"spinCount" => a.spin = text.parse().unwrap_or(u32::MAX),
            b"cipherAlgorithm" => a.cipher_ok &= text == "AES",
            b"cipherChaining" => a.cipher_ok &= text == "ChainingModeCBC",
            b"encryptedVerifierHashInput" => a.verifier_input = b64(value),
            b"encryptedVerifierHashValue" => a.verifier_hash = b64(value),
            b"encryptedKeyValue" => a.key_value = b64(value),
            _ => {}
        }
    }
    a
}

/// 2.3.4.10–13: agile encryption, password key encryptor.
fn agile(xml: &[u8], password: &[u8]) -> Result<PackageKey, NotOpened> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut key_data = None;
    let mut encryptor = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => match e.local_name().as_ref() {
                b"keyData" if key_data.is_none() => key_data = Some(attributes(&e)),
                // The password key encryptor (certificate encryptors carry no spin count).
                b"encryptedKey" if encryptor.is_none() && e.attributes().flatten().any(|a| a.key.local_name().as_ref() == b"spinCount") => {
                    encryptor = Some(attributes(&e))
                }
                _ => {}
            },
            Ok(quick_xml::events::Event::Eof) => break,
            Err(e) => return Err(unsupported(&format!("agile encryption description: {e}"))),
            _ => {}
        }
        buf.clear();
    }
    let (Some(kd), Some(ek)) = (key_data, encryptor) else { return Err(unsupported("no password key encryptor")) };
    let (Some(kd_hash), Some(ek_hash)) = (kd.hash, ek.hash) else { return Err(unsupported("unknown hash algorithm")) };
    let sizes_ok = |a: &Attributes| a.cipher_ok && matches!(a.key_bits, 128 | 192 | 256) && a.block == 16 && !a.salt.is_empty();
    if !sizes_ok(&kd) || !sizes_ok(&ek) {
        return Err(unsupported("cipher other than AES-CBC, or key/block sizes out of range"));
    }
    if ek.spin > MAX_SPIN_COUNT {
        return Err(unsupported(&format!("spin count {} above the bound of {MAX_SPIN_COUNT}", ek.spin)));
    }

    let memo_key = [b"agile".as_slice(), format!("{ek_hash:?}/{}/{}", ek.spin, ek.salt.len()).as_bytes(), &ek.salt, password].concat();
    let h = crate::crypto::memoized(&memo_key, || {
        let mut h = ek_hash.hash(&[&ek.salt, password]);
        for i in 0..ek.spin {
            h = ek_hash.hash(&[&i.to_le_bytes(), &h]);
        }
        h
    });
    let derive = |block_key: &[u8]| fit(&ek_hash.hash(&[&h, block_key]), ek.key_bits / 8, 0x36);
    let iv = fit(&ek.salt, ek.block, 0x36);
    let decrypt = |block_key: &[u8], data: &[u8]| aes_cbc_decrypt(&derive(block_key), &iv, &data[..data.len() / 16 * 16]);

    let input = decrypt(&[0xfe, 0xa7, 0xd2, 0x76, 0x3b, 0x4b, 0x9e, 0x79], &ek.verifier_input).ok_or_else(|| unsupported("verifier"))?;
    let hash = decrypt(&[0xd7, 0xaa, 0x0f, 0x6d, 0x30, 0x61, 0x34, 0x4e], &ek.verifier_hash).ok_or_else(|| unsupported("verifier"))?;
    let input = &input[..ek.salt.len().min(input.len())];
    let expected = ek_hash.hash(&[input]);
    let hash_size = if ek.hash_size == 0 { expected.len() } else { ek.hash_size.min(expected.len()) };
    if hash.len() < hash_size || expected[..hash_size] != hash[..hash_size] {
        return Err(NotOpened::RealPassword);
    }
    let key = decrypt(&[0x14, 0x6e, 0x0b, 0xe7, 0xab, 0xac, 0xd0, 0xd6], &ek.key_value).ok_or_else(|| unsupported("key value"))?;
    if key.len() < kd.key_bits / 8 {
        return Err(unsupported("key value too short"));
    }
    Ok(PackageKey::Agile { key: key[..kd.key_bits / 8].to_vec(), salt: kd.salt, hash: kd_hash, block: kd.block })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agile_info(spin: &str) -> Vec<u8> {
        let mut info = vec![4, 0, 4, 0, 0x40, 0, 0, 0];
        info.extend_from_slice(
            format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption" xmlns:p="http://schemas.microsoft.com/office/2006/keyEncryptor/password">
<keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="AAAAAAAAAAAAAAAAAAAAAA=="/>
<keyEncryptors><keyEncryptor uri="http://schemas.microsoft.com/office/2006/keyEncryptor/password">
<p:encryptedKey spinCount="{spin}" saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="AAAAAAAAAAAAAAAAAAAAAA==" encryptedVerifierHashInput="AAAAAAAAAAAAAAAAAAAAAA==" encryptedVerifierHashValue="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" encryptedKeyValue="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/>
</keyEncryptor></keyEncryptors></encryption>"#
            )
            .as_bytes(),
        );
        info
    }

    #[test]
    fn a_spin_count_past_the_bound_is_refused_before_any_work() {
        let started = std::time::Instant::now();
        match unlock(&agile_info("4000000000"), DEFAULT_PASSWORD) {
            Err(NotOpened::Unsupported(why)) => assert!(why.contains("spin count"), "{why}"),
            other => panic!("{:?}", other.err()),
        }
        // Refused from the description alone: no key derivation ran (4e9 rounds would take hours).
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_wrong_verifier_is_a_real_password() {
        // Zero ciphertexts do not verify: the password is not the default one.
        assert!(matches!(unlock(&agile_info("10"), DEFAULT_PASSWORD), Err(NotOpened::RealPassword)));
    }

    #[test]
    fn unknown_versions_and_short_streams_are_unsupported() {
        assert!(matches!(unlock(&[], DEFAULT_PASSWORD), Err(NotOpened::Unsupported(_))));
        assert!(matches!(unlock(&[3, 0, 3, 0], DEFAULT_PASSWORD), Err(NotOpened::Unsupported(_))));
        assert!(matches!(unlock(&[4, 0, 2, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], DEFAULT_PASSWORD), Err(NotOpened::Unsupported(_))));
        let key = PackageKey::Standard { key: vec![0; 16] };
        assert!(decrypt_package(&key, &[1, 0, 0, 0, 0, 0, 0, 0], 1 << 20).is_err(), "a declared size past the stream");
        assert!(decrypt_package(&key, &[0xff; 40], 1 << 20).is_err(), "a declared size past the limit");
    }
}
