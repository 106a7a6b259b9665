//! Envelope plaintext framing and padding (spec §6.6).
//!
//! `plaintext = u32be(len(content)) || content || zero bytes`. The padding length is
//! the sender's choice (any number of zero bytes is valid); the RECOMMENDED policy,
//! used by the reference sealer, pads `4 + len(content)` to a *bucket*: at least 64
//! bytes, above that the Padmé length (Nikitin et al., PETS 2019), which leaks
//! O(log log n) bits of the length with at most 12% overhead.

use alloc::vec::Vec;

use crate::error::Error;

/// Smallest bucket of the recommended padding policy.
pub const MIN_BUCKET: usize = 64;

/// The Padmé length of `len`: `len` rounded up so that only its top
/// `floor(log2(floor(log2 len))) + 1` bits may be non-zero.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // floor(log2 len)
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    len.saturating_add(mask) & !mask
}

/// The recommended padded plaintext length for `content_len` bytes of content.
pub fn bucket(content_len: usize) -> usize {
    let framed = content_len.saturating_add(4);
    let padded = padme(framed as u64).max(MIN_BUCKET as u64);
    usize::try_from(padded).unwrap_or(usize::MAX)
}

/// Frames `content` and pads the result with zeros to `padded_len` bytes (at least
/// the framed length).
pub fn frame(content: &[u8], padded_len: usize) -> Result<Vec<u8>, Error> {
    let len = u32::try_from(content.len()).map_err(|_| Error::LimitExceeded {
        what: "envelope content",
        max: u64::from(u32::MAX),
        actual: content.len() as u64,
    })?;
    let total = padded_len.max(content.len() + 4);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(content);
    out.resize(total, 0);
    Ok(out)
}

/// Removes the framing: `MALFORMED` if the length prefix does not fit,
/// `NON_CANONICAL` if any padding byte is not zero.
pub fn unframe(plaintext: &[u8]) -> Result<&[u8], Error> {
    let (len_bytes, rest) = plaintext.split_first_chunk::<4>().ok_or(Error::malformed(
        "envelope plaintext",
        "shorter than its length prefix",
    ))?;
    let len = u32::from_be_bytes(*len_bytes) as usize;
    if len > rest.len() {
        return Err(Error::malformed(
            "envelope plaintext",
            "length prefix exceeds plaintext",
        ));
    }
    let (content, padding) = rest.split_at(len);
    if padding.iter().any(|b| *b != 0) {
        return Err(Error::non_canonical(
            "envelope plaintext",
            "non-zero padding",
        ));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padme_examples() {
        assert_eq!(padme(100), 104);
        assert_eq!(padme(64), 64);
        assert_eq!(padme(1000), 1024);
        assert_eq!(bucket(0), 64);
        assert_eq!(bucket(60), 64);
        assert_eq!(bucket(61), 72);
    }

    proptest! {
        #[test]
        fn padme_overhead_is_bounded(len in 2u64..(1 << 40)) {
            let p = padme(len);
            prop_assert!(p >= len);
            prop_assert!((p - len) * 100 <= len * 12 + 100);
            prop_assert_eq!(padme(p), p);
        }

        #[test]
        fn frame_round_trips(content in proptest::collection::vec(any::<u8>(), 0..600)) {
            let framed = frame(&content, bucket(content.len())).unwrap();
            prop_assert_eq!(framed.len(), bucket(content.len()));
            prop_assert_eq!(unframe(&framed).unwrap(), &content[..]);
        }
    }

    #[test]
    fn unframe_errors() {
        assert_eq!(
            unframe(&[0, 0]).unwrap_err().class(),
            crate::ErrorClass::Malformed
        );
        assert_eq!(
            unframe(&[0, 0, 0, 9, 1]).unwrap_err().class(),
            crate::ErrorClass::Malformed
        );
        assert_eq!(
            unframe(&[0, 0, 0, 1, 1, 0, 2]).unwrap_err().class(),
            crate::ErrorClass::NonCanonical
        );
        assert_eq!(unframe(&[0, 0, 0, 1, 1, 0, 0]).unwrap(), &[1]);
    }
}
