//! Options: the builder a caller opens a store with ([`OpenOptions`]), and the configuration a
//! store persists at creation (`eventfile.json`), which wins over the builder on every later open.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::record::{self, FORMAT_VERSION};
use crate::storage::{OsStorage, Storage};

/// Name of the store configuration file.
pub(crate) const CONFIG_FILE: &str = "eventfile.json";

/// Default segment size at which the active segment rolls: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Default largest encoded event: 4 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// When an append's bytes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// An append returns only after its bytes are `fdatasync`ed; concurrent appenders share one
    /// sync (group commit). Readers see an event only once it is durable. The default.
    #[default]
    Fsync,
    /// Appends return once written to the OS; a background thread syncs at this interval. A crash
    /// of the machine (not of the process) can lose the last interval's appends.
    Periodic(Duration),
    /// Never sync (except when a segment is sealed and on close): for tests and throwaway data.
    None,
}

/// Default for [`OpenOptions::max_mapped_segments`].
pub(crate) const DEFAULT_MAX_MAPPED_SEGMENTS: usize = 256;

/// Default for [`OpenOptions::read_cache_bytes`]: 8 MiB.
pub const DEFAULT_READ_CACHE_BYTES: usize = 8 << 20;

/// Default number of snapshots kept per stream.
pub const DEFAULT_SNAPSHOTS_KEPT: usize = 3;

/// The options a store persists when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Size at which the active segment is sealed and a new one started.
    pub segment_bytes: u64,
    /// Largest encoded event record.
    pub max_event_bytes: usize,
    /// Which old segments retention removes (changed later with
    /// [`crate::Store::set_retention_policy`]).
    pub retention: RetentionPolicy,
    /// How many snapshots are kept per stream (the newest).
    pub snapshots_kept: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            retention: RetentionPolicy::default(),
            snapshots_kept: DEFAULT_SNAPSHOTS_KEPT,
        }
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<()> {
        if self.segment_bytes < 4096 || self.segment_bytes > 1 << 30 {
            return Err(Error::invalid(
                "segment size",
                "must be between 4096 bytes and 1 GiB",
            ));
        }
        if self.max_event_bytes < 256 || self.max_event_bytes > 1 << 30 {
            return Err(Error::invalid(
                "maximum event size",
                "must be between 256 bytes and 1 GiB",
            ));
        }
        if self.snapshots_kept == 0 || self.snapshots_kept > 1000 {
            return Err(Error::invalid(
                "snapshots kept",
                "must be between 1 and 1000",
            ));
        }
        self.retention.validate(self.segment_bytes)
    }

    /// The longest line a reader will look for in this store.
    pub(crate) fn max_line(&self) -> usize {
        self.max_event_bytes + record::LINE_SLACK
    }
}

#[derive(Serialize, Deserialize)]
struct ConfigFile {
    eventfile: String,
    format: u64,
    segment_bytes: u64,
    max_event_bytes: usize,
    /// Names the store, so a cursor made by one store is refused by another. Stores created
    /// before it existed get one on their next writable open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store_id: Option<String>,
    #[serde(default)]
    retention: PolicyFile,
    #[serde(default = "default_snapshots_kept")]
    snapshots_kept: usize,
}

fn default_snapshots_kept() -> usize {
    DEFAULT_SNAPSHOTS_KEPT
}

/// Reads `eventfile.json`: the options and the store id; `Ok(None)` if there is none.
pub(crate) fn load_config(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Option<(StoreConfig, Option<String>)>> {
    let path = dir.join(CONFIG_FILE);
    let bytes = match storage.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let file: ConfigFile =
        record::decode_object(&bytes).map_err(|reason| Error::corrupt(&path, 0, reason))?;
    if file.eventfile != "store" {
        return Err(Error::corrupt(
            &path,
            0,
            "not an eventfile store configuration",
        ));
    }
    if file.format != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path,
            found: file.format,
            supported: FORMAT_VERSION,
        });
    }
    let config = StoreConfig {
        segment_bytes: file.segment_bytes,
        max_event_bytes: file.max_event_bytes,
        retention: file.retention.into(),
        snapshots_kept: file.snapshots_kept,
    };
    // The limits bound how much a reader buffers: a hostile file must not raise them.
    config
        .validate()
        .map_err(|e| Error::corrupt(&path, 0, e.to_string()))?;
    let id = file.store_id.filter(|id| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    Ok(Some((config, id)))
}

/// A new store id: a UUIDv7 as 32 hex digits.
pub(crate) fn new_store_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Writes `eventfile.json` atomically (temp, fsync, rename, directory fsync).
pub(crate) fn write_config(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    store_id: &str,
) -> Result<()> {
    let bytes = record::encode_object(&ConfigFile {
        eventfile: "store".into(),
        format: FORMAT_VERSION,
        segment_bytes: config.segment_bytes,
        max_event_bytes: config.max_event_bytes,
        store_id: Some(store_id.to_owned()),
        retention: config.retention.into(),
        snapshots_kept: config.snapshots_kept,
    });
    write_atomic(storage, dir, CONFIG_FILE, &bytes)
}

/// How to open a store. Ends in [`OpenOptions::open`].
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use eventfile::{Durability, OpenOptions};
/// let store = OpenOptions::new()
///     .segment_bytes(8 * 1024 * 1024)
///     .durability(Durability::Fsync)
///     .open(dir.path())?;
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct OpenOptions {
    pub(crate) config: StoreConfig,
    pub(crate) durability: Durability,
    pub(crate) read_only: bool,
    pub(crate) create: bool,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Clock,
    pub(crate) max_mapped_segments: usize,
    pub(crate) map_sealed: bool,
    pub(crate) read_cache_bytes: usize,
}

/// A source of event timestamps (microseconds since the Unix epoch).
pub(crate) type Clock = Arc<dyn Fn() -> crate::time::Micros + Send + Sync>;

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("config", &self.config)
            .field("durability", &self.durability)
            .field("read_only", &self.read_only)
            .field("create", &self.create)
            .finish_non_exhaustive()
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The defaults: durable appends, writable, create the store if missing.
    pub fn new() -> OpenOptions {
        OpenOptions {
            config: StoreConfig::default(),
            durability: Durability::default(),
            read_only: false,
            create: true,
            storage: Arc::new(OsStorage),
            clock: Arc::new(crate::time::now_micros),
            max_mapped_segments: DEFAULT_MAX_MAPPED_SEGMENTS,
            map_sealed: false,
            read_cache_bytes: DEFAULT_READ_CACHE_BYTES,
        }
    }

    /// Size at which a segment is sealed and a new one started. Default 64 MiB. Used only when
    /// the store is created; an existing store keeps the value it was created with.
    pub fn segment_bytes(mut self, bytes: u64) -> OpenOptions {
        self.config.segment_bytes = bytes;
        self
    }

    /// Largest encoded event record; larger appends fail with [`Error::EventTooLarge`].
    /// Default 4 MiB. Used only when the store is created.
    pub fn max_event_bytes(mut self, bytes: usize) -> OpenOptions {
        self.config.max_event_bytes = bytes;
        self
    }

    /// The retention policy a new store starts with (default: keep everything). Used only when
    /// the store is created; change it later with [`crate::Store::set_retention_policy`].
    pub fn retention(mut self, policy: RetentionPolicy) -> OpenOptions {
        self.config.retention = policy;
        self
    }

    /// How many snapshots to keep per stream (default 3). Used only when the store is created.
    pub fn snapshots_kept(mut self, n: usize) -> OpenOptions {
        self.config.snapshots_kept = n;
        self
    }

    /// When appends reach the disk. Default [`Durability::Fsync`]. Applies to this handle only.
    pub fn durability(mut self, durability: Durability) -> OpenOptions {
        self.durability = durability;
        self
    }

    /// Open without taking the writer lock: any number of read-only handles, in any processes,
    /// may be open next to the one writer. Default false. A read-only open never creates,
    /// repairs or writes anything.
    pub fn read_only(mut self, read_only: bool) -> OpenOptions {
        self.read_only = read_only;
        self
    }

    /// How many sealed segments may be open at once (each holds two files open: its segment
    /// and its index sidecar, which are read where needed rather than mapped). Default 256. A
    /// read that reaches a segment that is not open opens it and closes the one opened longest
    /// ago, so a store of any number of segments opens and reads within the process's limit on
    /// open files (often 1,024). Values below 1 count as 1. (The name is from when sealed
    /// segments were memory-mapped.)
    pub fn max_mapped_segments(mut self, segments: usize) -> OpenOptions {
        self.max_mapped_segments = segments;
        self
    }

    /// Whether reads map the open sealed segments and their sidecars into memory instead of
    /// reading what they need with `pread`. Default false.
    ///
    /// Mapped, a warm stream read or query makes no system call per lookup or record: on this
    /// project's machine, one 100-event stream of a 1,000,000-event store was read about twice as
    /// fast (`benches/read_cpu.rs`, `docs/performance.md`). The price is resident memory: the
    /// kernel maps the page-cache folios around each page a read touches, so reading one stream
    /// of that store left about 70 MiB resident instead of 5 (reclaimable file pages, but they
    /// count in the process's resident size). A long-lived server that reads hot streams over
    /// and over may want it; a tool or a process that must stay small should not.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = eventfile::OpenOptions::new().map_sealed_segments(true).open(dir.path())?;
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn map_sealed_segments(mut self, map: bool) -> OpenOptions {
        self.map_sealed = map;
        self
    }

    /// Bytes of sealed segments and their sidecars kept in memory between reads, in 4 KiB
    /// blocks. Default [`DEFAULT_READ_CACHE_BYTES`] (8 MiB); 0 keeps none.
    ///
    /// Sealed files are read with `pread`, and the records a stream read picks out lie far
    /// apart: without the cache, each costs system calls (its position, then the record) even
    /// when the kernel's page cache holds them. With it, reading a stream again (loading a hot
    /// aggregate) reads nothing from the files. Only small reads go through it (lookups in the
    /// sidecars, records read one by one); scans such as `read_all` read around it, and a block
    /// is kept only when it is read a second time, so that reading many streams once each does
    /// not flush it. An eighth of the bound keeps, per sealed segment, where the records of the
    /// streams read lately lie (16 bytes a record, plus the stream's name twice and about 200
    /// bytes an entry), so that a stream read again skips the lookup too; the blocks get the
    /// other seven eighths. The bound holds store-wide for the blocks and the memo together;
    /// the tables that find the blocks add about 4% on top. A record read through the cache is
    /// checked as any other: its frame, its CRC and that it is the record the index meant.
    /// SQLite keeps a page cache (2 MiB by default) for the same reason.
    pub fn read_cache_bytes(mut self, bytes: usize) -> OpenOptions {
        self.read_cache_bytes = bytes;
        self
    }

    /// Create the store if the directory holds none. Default true.
    pub fn create(mut self, create: bool) -> OpenOptions {
        self.create = create;
        self
    }

    /// Where event times come from. Default: the system clock. For tests and generated data;
    /// whatever the clock says, the store never lets time decrease.
    pub fn clock(
        mut self,
        clock: impl Fn() -> crate::time::Micros + Send + Sync + 'static,
    ) -> OpenOptions {
        self.clock = Arc::new(clock);
        self
    }

    /// Route all file I/O through `storage` (fault injection in tests).
    #[cfg(feature = "internals")]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> OpenOptions {
        self.storage = storage;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if let Durability::Periodic(d) = self.durability
            && d.is_zero()
        {
            return Err(Error::invalid("sync interval", "must be greater than zero"));
        }
        Ok(())
    }
}

/// Which old segments a store removes when [`crate::Store::run_retention`] runs. Persisted with the
/// store; the default keeps everything forever.
///
/// ```
/// use std::time::Duration;
/// use eventfile::RetentionPolicy;
/// let policy = RetentionPolicy::keep_all()
///     .max_age(Duration::from_secs(30 * 24 * 3600))
///     .segment_max_age(Duration::from_secs(24 * 3600));
/// assert!(policy.validate(64 << 20).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
#[must_use]
pub struct RetentionPolicy {
    /// Remove a sealed segment once its newest event is older than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest sealed segments while the store stays at least this large without them.
    pub max_bytes: Option<u64>,
    /// Remove the oldest sealed segments while the store keeps at least this many events.
    pub max_events: Option<u64>,
    /// Seal the active segment once its first event is older than this, so that a quiet store's
    /// data becomes old enough to expire as a whole segment.
    pub segment_max_age: Option<Duration>,
}

impl RetentionPolicy {
    /// Keep everything forever (the default).
    pub fn keep_all() -> RetentionPolicy {
        RetentionPolicy::default()
    }

    /// Sets [`RetentionPolicy::max_age`].
    pub fn max_age(mut self, age: Duration) -> RetentionPolicy {
        self.max_age = Some(age);
        self
    }

    /// Sets [`RetentionPolicy::max_bytes`].
    pub fn max_bytes(mut self, bytes: u64) -> RetentionPolicy {
        self.max_bytes = Some(bytes);
        self
    }

    /// Sets [`RetentionPolicy::max_events`].
    pub fn max_events(mut self, events: u64) -> RetentionPolicy {
        self.max_events = Some(events);
        self
    }

    /// Sets [`RetentionPolicy::segment_max_age`].
    pub fn segment_max_age(mut self, age: Duration) -> RetentionPolicy {
        self.segment_max_age = Some(age);
        self
    }

    /// Whether the policy removes anything ever.
    pub fn keeps_all(&self) -> bool {
        self.max_age.is_none() && self.max_bytes.is_none() && self.max_events.is_none()
    }

    /// Refuses policies that would remove every event or the active segment: zero limits, and a
    /// byte limit below one segment (`segment_bytes`).
    pub fn validate(&self, segment_bytes: u64) -> Result<()> {
        let refuse = |reason: String| Err(Error::RetentionRefused { reason });
        if self.max_events == Some(0) {
            return refuse("max_events of 0 would remove every event".into());
        }
        if let Some(b) = self.max_bytes
            && b < segment_bytes
        {
            return refuse(format!(
                "max_bytes of {b} is below the segment size of {segment_bytes} bytes: \
                 the active segment alone would be over the limit"
            ));
        }
        for (name, d) in [
            ("max_age", self.max_age),
            ("segment_max_age", self.segment_max_age),
        ] {
            if d.is_some_and(|d| d < Duration::from_secs(1)) {
                return refuse(format!("{name} must be at least one second"));
            }
        }
        Ok(())
    }
}

/// How the policy is stored in `eventfile.json` (whole seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PolicyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segment_max_age_secs: Option<u64>,
}

impl From<RetentionPolicy> for PolicyFile {
    fn from(p: RetentionPolicy) -> PolicyFile {
        PolicyFile {
            max_age_secs: p.max_age.map(|d| d.as_secs()),
            max_bytes: p.max_bytes,
            max_events: p.max_events,
            segment_max_age_secs: p.segment_max_age.map(|d| d.as_secs()),
        }
    }
}

impl From<PolicyFile> for RetentionPolicy {
    fn from(p: PolicyFile) -> RetentionPolicy {
        RetentionPolicy {
            max_age: p.max_age_secs.map(Duration::from_secs),
            max_bytes: p.max_bytes,
            max_events: p.max_events,
            segment_max_age: p.segment_max_age_secs.map(Duration::from_secs),
        }
    }
}
