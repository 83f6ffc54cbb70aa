//! Opens a store read-only N times and prints the mean time per open: the read-only open of
//! `docs/performance.md`, small enough to run under `valgrind --tool=callgrind` or `strace -c`
//! to compare the work two builds do (instructions and system calls do not swing with the
//! machine's load as wall time does).
//!
//! `cargo run --release --example open_read_only -- DIR N` (DIR is created with 200,000 events
//! in 256 KiB segments if it does not exist).

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Store};

fn main() -> eventfile::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: open_read_only DIR N");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    if !dir.exists() {
        let store = OpenOptions::new()
            .segment_bytes(256 * 1024)
            .durability(Durability::None)
            .open(&dir)?;
        for b in 0..2000u64 {
            let events = (0..100u64).map(|i| {
                let data = serde_json::json!({"b": b, "i": i, "pad": "x".repeat(32)});
                NewEvent::new(["A", "B", "C"][(i % 3) as usize], data)
                    .with_tag(format!("t={}", i % 7))
            });
            store.append(&format!("s-{}", b % 500), ExpectedVersion::Any, events)?;
        }
        store.close()?;
    }
    let start = std::time::Instant::now();
    for _ in 0..n.max(1) {
        let store = Store::open_read_only(&dir)?;
        std::hint::black_box(store.head_seq());
    }
    eprintln!("{:?} per open", start.elapsed() / n.max(1));
    Ok(())
}
