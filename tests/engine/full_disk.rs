//! A real full disk: a small tmpfs fills up under the writer.

use std::path::Path;
use std::process::Command;

use eventfile::{Error, ExpectedVersion, NewEvent, OpenOptions, Read, Store};
use serde_json::json;

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn mount(dir: &Path, size: &str, remount: bool) {
    let opts = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount -o {opts} failed (this test needs root)");
}

#[test]
#[ignore = "mounts a 1 MiB tmpfs, which needs root; .ci/run runs it when it runs as root"]
fn a_real_full_disk_fails_the_append_poisons_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    mount(tmp.path(), "1m", false);
    let _mount = Mount(tmp.path());
    let dir = tmp.path().join("store");
    let store = OpenOptions::new()
        .segment_bytes(128 * 1024)
        .open(&dir)
        .unwrap();
    let mut acked = Vec::new();
    let err = loop {
        let e = NewEvent::new(
            "Filled",
            json!({ "n": acked.len(), "pad": "x".repeat(400) }),
        );
        match store.append("s", ExpectedVersion::Any, [e]) {
            Ok(r) => acked.push(r.first_seq),
            Err(e) => break e,
        }
        assert!(acked.len() < 100_000, "the disk never filled");
    };
    match &err {
        Error::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(28), "{err}"),
        other => panic!("expected ENOSPC, got {other}"),
    }
    assert!(matches!(
        store.append("s", ExpectedVersion::Any, [NewEvent::new("T", json!(1))]),
        Err(Error::Poisoned { .. })
    ));
    drop(store);
    // Reopening on the still-full disk may fail, but only with an I/O error.
    match Store::open(&dir) {
        Ok(s) => assert!(s.stream_version("s") >= acked.len() as u64),
        Err(Error::Io { .. }) => {}
        Err(other) => panic!("reopen on a full disk: {other}"),
    }
    // With room again, everything acknowledged is there and appends go on.
    mount(tmp.path(), "8m", true);
    let store = Store::open(&dir).unwrap();
    let seqs: Vec<u64> = store
        .read_stream("s", Read::forward())
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert!(seqs.len() >= acked.len());
    assert_eq!(&seqs[..acked.len()], &acked[..]);
    store
        .append("s", ExpectedVersion::Any, [NewEvent::new("T", json!(1))])
        .unwrap();
    drop(store);
    assert!(eventfile::verify(&dir).unwrap().is_sound());
    eprintln!(
        "full disk: {} events acknowledged before ENOSPC, all recovered",
        acked.len()
    );
}
