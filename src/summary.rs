//! The summary sidecar of a sealed segment (`<base>.summary`): what open needs from a sealed
//! segment without reading its events. It is a cache: anything wrong with it (missing, damaged,
//! stale, another format) makes the caller rebuild it by scanning the segment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::{self, FORMAT_VERSION};
use crate::storage::Storage;

/// Extension of summary files.
pub const SUMMARY_EXT: &str = "summary";

/// The summary file of the segment starting at `base`.
pub fn summary_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.{SUMMARY_EXT}"))
}

/// What a sealed segment holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// First seq of the segment.
    pub base_seq: u64,
    /// Byte length of the segment described.
    pub segment_len: u64,
    /// Last seq in the segment (`base_seq - 1` if it holds none).
    pub last_seq: u64,
    /// Time of the last event (0 if none).
    pub last_time: i64,
    /// `(stream, last_version, count)` for every stream in the segment.
    pub streams: Vec<(String, u64, u64)>,
    /// Sparse position index `(seq, offset)`.
    pub sparse: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct SummaryFile {
    eventfile: String,
    format: u64,
    #[serde(flatten)]
    summary: Summary,
}

/// Builds a summary incrementally while the segment's records go by.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    streams: HashMap<String, (u64, u64)>,
}

impl SummaryBuilder {
    /// Notes one record.
    pub fn add(&mut self, stream: &str, version: u64) {
        match self.streams.get_mut(stream) {
            Some(e) => {
                e.0 = version;
                e.1 += 1;
            }
            None => {
                self.streams.insert(stream.to_owned(), (version, 1));
            }
        }
    }

    /// The streams seen, sorted by name.
    pub fn streams(&self) -> Vec<(String, u64, u64)> {
        let mut v: Vec<_> = self
            .streams
            .iter()
            .map(|(s, &(v, c))| (s.clone(), v, c))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Loads and checks the summary of segment `base`, expected to describe `segment_len` bytes.
/// `None` when it is missing or unusable for any reason.
pub fn load(storage: &dyn Storage, dir: &Path, base: u64, segment_len: u64) -> Option<Summary> {
    let bytes = storage.read(&summary_path(dir, base)).ok()?;
    let file: SummaryFile = record::decode_object(&bytes).ok()?;
    let s = file.summary;
    let sane = file.eventfile == "summary"
        && file.format == FORMAT_VERSION
        && s.base_seq == base
        && s.segment_len == segment_len
        && s.last_seq + 1 >= base
        && s.streams.iter().map(|t| t.2).sum::<u64>() == s.last_seq + 1 - base;
    sane.then_some(s)
}

/// Writes a summary atomically.
pub fn store(storage: &dyn Storage, dir: &Path, summary: &Summary) -> Result<()> {
    let bytes = record::encode_object(&SummaryFile {
        eventfile: "summary".into(),
        format: FORMAT_VERSION,
        summary: summary.clone(),
    });
    let name = format!("{:020}.{SUMMARY_EXT}", summary.base_seq);
    crate::config::write_atomic(storage, dir, &name, &bytes)
}
