//! STO-16/STO-17: a file key is drawn fresh for every upload, so the counter
//! nonces of STO-17 never repeat under one key: the same bytes uploaded twice (a
//! retried upload, say) are sealed under two keys into disjoint chunk objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{backend, block_on, device, world};

#[test]
fn the_same_file_uploaded_twice_gets_two_keys_and_disjoint_chunks() {
    block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let store = backend("fs", tmp.path()).unwrap();
        let w = world();
        let mut a = device(&w, &store, 0).await;
        let data: Vec<u8> = (0..(2 * 1024 * 1024 + 5))
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let first = a
            .space
            .put_file(&data[..], "image/png", |_| {})
            .await
            .unwrap();
        let again = a
            .space
            .put_file(&data[..], "image/png", |_| {})
            .await
            .unwrap();
        assert_ne!(first.to_bytes(), again.to_bytes(), "two manifests");
        let mut out = Vec::new();
        let m1 = a.space.get_file(&first, &mut out, |_, _| {}).await.unwrap();
        assert_eq!(out, data);
        out.clear();
        let m2 = a.space.get_file(&again, &mut out, |_, _| {}).await.unwrap();
        assert_eq!(out, data);
        assert_eq!(m1.chunks.len(), 3);
        assert_eq!(m1.content_hash, m2.content_hash);
        assert_ne!(m1.file_key, m2.file_key, "a file key is never reused");
        let c1: HashSet<_> = m1.chunks.iter().collect();
        assert!(
            m2.chunks.iter().all(|c| !c1.contains(c)),
            "equal plaintext chunks under distinct keys give distinct objects"
        );
    });
}
