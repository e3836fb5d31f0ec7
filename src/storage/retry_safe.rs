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
//! the write reports success. Anything else stays the precondition failure it was.

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

    /// Whether `location` holds exactly `sent`; `None` when it cannot be read (then the
    /// precondition failure stands).
    async fn holds(&self, location: &Path, sent: &Bytes) -> Option<PutResult> {
        let current = self.inner.get(location).await.ok()?;
        let meta = current.meta.clone();
        let bytes = current.bytes().await.ok()?;
        (bytes == *sent).then_some(PutResult {
            e_tag: meta.e_tag,
            version: meta.version,
        })
    }
}

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
        let conditional = matches!(opts.mode, PutMode::Create | PutMode::Update(_));
        let sent = conditional.then(|| Bytes::from(payload.clone()));
        let result = self.inner.put_opts(location, payload, opts).await;
        match (result, sent) {
            (
                Err(
                    e @ (object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }),
                ),
                Some(sent),
            ) => match self.holds(location, &sent).await {
                Some(written) => {
                    tracing::debug!(%location, "a conditional write found its own earlier attempt");
                    Ok(written)
                }
                None => Err(e),
            },
            (result, _) => result,
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
