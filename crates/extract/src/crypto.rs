//! The few ciphers that "encryption that is no secret" needs: RC4 and AES-CBC/ECB for PDF's
//! standard security handler and Office's ECMA-376 encryption, over RustCrypto's block ciphers
//! and hashes. Only what decryption with a known password needs; nothing here is a secret.

use aes::cipher::{block_padding::NoPadding, BlockDecrypt, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use sha2::Digest;

/// RC4 (ARC4) keystream applied to `data` (encryption and decryption are the same).
pub(crate) fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return data.to_vec();
    }
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, j as usize);
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|b| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[i as usize]);
            s.swap(i as usize, j as usize);
            b ^ s[s[i as usize].wrapping_add(s[j as usize]) as usize]
        })
        .collect()
}

/// AES-CBC decryption without padding removal; `None` for a key of the wrong size or data
/// that is not whole blocks.
pub(crate) fn aes_cbc_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    if data.len() % 16 != 0 || iv.len() != 16 {
        return None;
    }
    let mut buf = data.to_vec();
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?,
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).ok()?.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?,
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).ok()?.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?,
        _ => return None,
    };
    Some(buf)
}

/// AES-128-CBC encryption of whole blocks (PDF 2.0's password hash uses it).
pub(crate) fn aes128_cbc_encrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let mut buf = data.to_vec();
    let len = buf.len();
    cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?.encrypt_padded_mut::<NoPadding>(&mut buf, len).ok()?;
    Some(buf)
}

/// AES-ECB decryption of whole blocks in place (ECMA-376 standard encryption).
pub(crate) fn aes_ecb_decrypt(key: &[u8], data: &mut [u8]) -> Option<()> {
    fn run<C: BlockDecrypt + KeyInit>(key: &[u8], data: &mut [u8]) -> Option<()> {
        let cipher = C::new_from_slice(key).ok()?;
        for block in data.chunks_exact_mut(16) {
            cipher.decrypt_block(block.into());
        }
        Some(())
    }
    if data.len() % 16 != 0 {
        return None;
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, data),
        24 => run::<aes::Aes192>(key, data),
        32 => run::<aes::Aes256>(key, data),
        _ => None,
    }
}

/// Strips PKCS#7 padding when it is well formed; leaves the data as it is otherwise (readers
/// tolerate bad padding, so must the extractor).
pub(crate) fn strip_pkcs7(mut data: Vec<u8>) -> Vec<u8> {
    if let Some(&n) = data.last() {
        let n = n as usize;
        if (1..=16).contains(&n) && n <= data.len() && data[data.len() - n..].iter().all(|&b| b as usize == n) {
            data.truncate(data.len() - n);
        }
    }
    data
}

thread_local! {
    static RECENT: std::cell::RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Forgets what [`memoized`] remembers on this thread (benchmarks measure the first reading).
pub(crate) fn forget_memoized() {
    RECENT.with(|r| r.borrow_mut().clear());
}

/// Remembers the last few results of a deliberately slow derivation (a password hash over many
/// rounds) on this thread: the same file is read twice in a row (its labels, then the files
/// inside it), and nothing derived here is a secret (the passwords are public knowledge).
pub(crate) fn memoized(key: &[u8], derive: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    const KEEP: usize = 4;
    if let Some(hit) = RECENT.with(|r| r.borrow().iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())) {
        return hit;
    }
    let value = derive();
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() == KEEP {
            r.remove(0);
        }
        r.push((key.to_vec(), value.clone()));
    });
    value
}

pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The hash algorithms ECMA-376 agile encryption names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub(crate) fn from_name(name: &str) -> Option<HashAlg> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(HashAlg::Sha1),
            "SHA256" => Some(HashAlg::Sha256),
            "SHA384" => Some(HashAlg::Sha384),
            "SHA512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub(crate) fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha384 => run::<sha2::Sha384>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc4_known_answer() {
        // The "Key" / "Plaintext" vector of the original RC4 test set.
        assert_eq!(rc4(b"Key", b"Plaintext"), [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
    }

    #[test]
    fn aes_cbc_round_trip_and_fips_vector() {
        // FIPS-197 C.1: AES-128 of 00112233…ff under 000102…0f (ECB = CBC with a zero IV).
        let key: Vec<u8> = (0u8..16).collect();
        let plain: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
        let cipher = aes128_cbc_encrypt(&key, &[0; 16], &plain).unwrap();
        assert_eq!(cipher, [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]);
        assert_eq!(aes_cbc_decrypt(&key, &[0; 16], &cipher).unwrap(), plain);
        let mut ecb = cipher.clone();
        aes_ecb_decrypt(&key, &mut ecb).unwrap();
        assert_eq!(ecb, plain);
        assert!(aes_cbc_decrypt(&key, &[0; 16], &cipher[..15]).is_none());
    }

    #[test]
    fn padding_is_stripped_only_when_well_formed() {
        assert_eq!(strip_pkcs7(vec![1, 2, 3, 2, 2]), vec![1, 2, 3]);
        assert_eq!(strip_pkcs7(vec![1, 2, 3, 1, 2]), vec![1, 2, 3, 1, 2]);
        assert_eq!(strip_pkcs7(vec![]), Vec::<u8>::new());
    }
}
