//! Conditional writes that survive a lost answer.
//!
//! `object_store` retries a write that met a 5xx or a dropped connection. When the store had
//! carried out the first attempt and only its answer was lost, the retry of a conditional write
//! (`If-None-Match: *` for a Delta commit, the run lock or a probe; `If-Match` for a lease renewal)
//! finds its own object there and fails its precondition. Taken at face value, that turns a commit
//! that landed into "another writer committed this version": delta-rs then checks the winner for
//! conflicts (it is our own commit, so a blind append finds none) and commits the same rows again
//! at the next version. Found by the storage-fault tests (RELIABILITY.md, defect 7).
//!
//! [`RetrySafeCreates`] answers the question the precondition failure leaves open: when the store
//! now holds exactly the bytes this write sent, the write happened (every Strata and Delta object
//! written this way carries something unique: a run id, file names with UUIDs, a timestamp), and
//! the write reports success. When nothing is there at all, the refusal was no answer (S3 says
//! `409 ConditionalRequestConflict` while another conditional write of the key is in flight, and
//! `object_store` reports that as "already exists"): the write is sent again, a few times. Anything
//! else stays the precondition failure it was.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result,
};

/// An object store whose conditional writes report success when an earlier attempt of the same
/// write is what stands in their way.
#[derive(Debug)]
pub struct RetrySafeCreates {
    inner: Arc<dyn ObjectStore>,
}

impl RetrySafeCreates {
    pub fn new(inner: Arc<dyn ObjectStore>) -> RetrySafeCreates {
        RetrySafeCreates { inner }
    }

    /// What stands at `location` after a conditional write was refused.
    async fn standing(&self, location: &Path, sent: &Bytes) -> Standing {
        let current = match self.inner.get(location).await {
            Ok(current) => current,
            Err(object_store::Error::NotFound { .. }) => return Standing::Nothing,
            Err(_) => return Standing::Unknown,
        };
        let meta = current.meta.clone();
        match current.bytes().await {
            Ok(bytes) if bytes == *sent => Standing::Ours(PutResult {
                e_tag: meta.e_tag,
                version: meta.version,
            }),
            Ok(_) => Standing::Theirs,
            Err(_) => Standing::Unknown,
        }
    }
}

/// What a refused conditional write finds at its location.
enum Standing {
    /// Exactly the bytes it sent: an earlier attempt of this write landed.
    Ours(PutResult),
    /// Another writer's object: the refusal stands.
    Theirs,
    /// No object: the refusal answered nothing, so the write may be sent again.
    Nothing,
    /// The object could not be read: the refusal stands.
    Unknown,
}

/// Sends of one conditional write refused while nothing stood at its location, and the wait
/// before the second send (doubled after each).
const SENDS_WHILE_NOTHING_STANDS: u32 = 5;
const FIRST_RESEND_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

impl fmt::Display for RetrySafeCreates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetrySafeCreates({})", self.inner)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for RetrySafeCreates {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Create | PutMode::Update(_)) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let sent = Bytes::from(payload.clone());
        let mut wait = FIRST_RESEND_WAIT;
        let mut sends = 1;
        loop {
            let refused = match self
                .inner
                .put_opts(location, payload.clone(), opts.clone())
                .await
            {
                Err(
                    e @ (object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }),
                ) => e,
                result => return result,
            };
            match self.standing(location, &sent).await {
                Standing::Ours(written) => {
                    tracing::debug!(%location, "a conditional write found its own earlier attempt");
                    return Ok(written);
                }
                // An update's precondition is about the object there: none there is its answer.
                Standing::Nothing
                    if matches!(opts.mode, PutMode::Create)
                        && sends < SENDS_WHILE_NOTHING_STANDS =>
                {
                    tracing::debug!(%location, "a conditional create was refused with nothing there; sending it again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    sends += 1;
                }
                Standing::Nothing | Standing::Theirs | Standing::Unknown => return Err(refused),
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn create() -> PutOptions {
        PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        }
    }

    /// Refuses the first `refusals` conditional creates with "already exists" without writing
    /// (as S3's 409 ConditionalRequestConflict does), then passes writes through.
    #[derive(Debug)]
    struct RefusingFirst {
        inner: InMemory,
        refusals: std::sync::atomic::AtomicU32,
    }

    impl fmt::Display for RefusingFirst {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "RefusingFirst")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for RefusingFirst {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            let left = self.refusals.load(std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                self.refusals
                    .store(left - 1, std::sync::atomic::Ordering::SeqCst);
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "409 ConditionalRequestConflict".into(),
                });
            }
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_create_refused_with_nothing_there_is_sent_again() {
        let store = RetrySafeCreates::new(Arc::new(RefusingFirst {
            inner: InMemory::new(),
            refusals: 2.into(),
        }));
        let path = Path::from("_delta_log/00000000000000000000.json");
        store
            .put_opts(&path, PutPayload::from_static(b"first"), create())
            .await
            .expect("sent again until the store answers");
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"first");
        // A store that never stops refusing: the refusal comes back after a few sends.
        let stubborn = RetrySafeCreates::new(Arc::new(RefusingFirst {
            inner: InMemory::new(),
            refusals: 100.into(),
        }));
        let refused = stubborn
            .put_opts(&path, PutPayload::from_static(b"first"), create())
            .await;
        assert!(
            matches!(refused, Err(object_store::Error::AlreadyExists { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_create_that_finds_its_own_bytes_succeeds_and_one_that_finds_others_fails() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = RetrySafeCreates::new(Arc::clone(&inner));
        let path = Path::from("_delta_log/00000000000000000001.json");
        // The first attempt landed but its answer was lost: the object is already there.
        inner
            .put_opts(&path, PutPayload::from_static(b"mine"), create())
            .await
            .unwrap();
        store
            .put_opts(&path, PutPayload::from_static(b"mine"), create())
            .await
            .expect("the retry of a write that landed succeeds");
        let other = store
            .put_opts(&path, PutPayload::from_static(b"theirs"), create())
            .await;
        assert!(
            matches!(other, Err(object_store::Error::AlreadyExists { .. })),
            "{other:?}"
        );
    }
}
