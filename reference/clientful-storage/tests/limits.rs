//! Size limits on the write path: a large outbox is split into segments that
//! readers accept, and a snapshot above the object limit is refused before
//! anything is collected.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use clientful_storage::object::MAX_OBJECT_BYTES;
use clientful_storage::space::SEGMENT_TARGET_BYTES;
use clientful_storage::{BlobStore, OpendalStore};
use common::{block_on, device, world};

const BIG: usize = 3 * 1024 * 1024 + 512 * 1024;

#[test]
fn large_outbox_is_split_and_oversized_snapshot_refused() {
    block_on(async {
        let w = world();
        let store = OpendalStore::memory().unwrap();
        let mut a = device(&w, &store, 0).await;
        let n = SEGMENT_TARGET_BYTES / BIG + 2;
        for i in 0..n {
            a.edit(&"x".repeat(BIG - i));
        }
        a.space.flush().await.unwrap();
        let es = a.space.current().clone();
        let objects = store.list(&es.objects_prefix()).await.unwrap();
        assert_eq!(
            objects.len(),
            2,
            "two segments, each under the reader's limit"
        );
        for p in &objects {
            assert!(store.get(p).await.unwrap().unwrap().len() <= MAX_OBJECT_BYTES);
        }
        let mut c = device(&w, &store, 1).await;
        let r = c.pull().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.segments, 2);
        assert_eq!(c.envelope_count(), n);

        // Double the history: a snapshot of it would exceed the object limit.
        for i in 0..n {
            a.edit(&"y".repeat(BIG - i));
        }
        a.space.flush().await.unwrap();
        let before = store.list("").await.unwrap();
        let err = a.space.compact().await.unwrap_err();
        assert!(err.to_string().contains("object limit"), "{err}");
        assert_eq!(store.list("").await.unwrap(), before, "nothing collected");
    });
}
