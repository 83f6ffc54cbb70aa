//! Turns the last `cargo bench` run into `docs/performance.md`'s tables and chart: reads
//! criterion's estimates under `target/criterion`, prints markdown tables of medians and ratios
//! against the peers of the same run, and writes `docs/perf-append-threads.svg` (durable append
//! throughput against thread count for eventfile, SQLite and the raw loop).
//!
//! `cargo bench && cargo run --release --example perf_report`

use std::path::{Path, PathBuf};

/// Criterion's median estimate for a benchmark, in nanoseconds per iteration.
fn median_ns(root: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(root.join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn rate(per_sec: f64) -> String {
    let n = per_sec.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    // Where criterion wrote them: `CRITERION_HOME`, else the target directory's `criterion`.
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let m = |id: &str| median_ns(&root, id);

    println!("### Durable appends, one event each (time per event; events/s)\n");
    let mut series: Vec<(&str, Vec<(u64, f64)>)> = vec![
        ("raw loop", vec![]),
        ("eventfile", vec![]),
        ("SQLite", vec![]),
    ];
    peer_table("threads", [1, 4, 16], |t, who| {
        let ns = m(&format!("durable_append_threads/{who}/{t}"));
        let i = ["raw", "eventfile", "sqlite"]
            .iter()
            .position(|w| *w == who);
        if let (Some(ns), Some(i)) = (ns, i) {
            series[i].1.push((t, 1e9 / ns));
        }
        ns
    });
    if let (Some(one), Some(sixteen)) = (
        m("durable_append_threads/eventfile/1"),
        m("durable_append_threads/eventfile/16"),
    ) {
        println!("\neventfile, 16 threads vs 1 thread: {:.2}x", one / sixteen);
    }

    println!("\n### Durable batches, one thread (time per event; events/s)\n");
    peer_table("events per append", [10, 100, 1000], |n, who| {
        m(&format!("durable_batch/{who}/{n}")).map(|ns| ns / n as f64)
    });

    println!("\n### Reads and queries (1,000,000 events)\n");
    println!("| query | eventfile | SQLite | eventfile vs SQLite |");
    println!("|---|---|---|---|");
    for (name, ef, sq) in [
        (
            "read one 100-event stream",
            "query/read_stream_100_eventfile",
            "query/read_stream_100_sqlite",
        ),
        (
            "read_all, 1,000,000 events",
            "read_all/eventfile",
            "read_all/sqlite",
        ),
        (
            "type filter, 1%",
            "query/type_1pct_eventfile",
            "query/type_1pct_sqlite",
        ),
        (
            "one-hour time range",
            "query/time_1h_eventfile",
            "query/time_1h_sqlite",
        ),
        (
            "tag filter, 1%",
            "query/tag_1pct_eventfile",
            "query/tag_1pct_sqlite",
        ),
        (
            "count of a type filter",
            "query/count_type_eventfile",
            "query/count_type_sqlite",
        ),
    ] {
        let (a, b) = (m(ef), m(sq));
        let ratio = match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}x faster", b / a),
            _ => "–".into(),
        };
        println!(
            "| {name} | {} | {} | {ratio} |",
            a.map_or("–".into(), time),
            b.map_or("–".into(), time)
        );
    }
    for (name, id) in [
        ("clean open, writer", "query/open_eventfile_writer"),
        ("clean open, read-only", "query/open_eventfile_read_only"),
        (
            "open after a crash, full 64 MiB active segment",
            "recovery/open_full_active_segment",
        ),
    ] {
        println!("| {name} | {} | | |", m(id).map_or("–".into(), time));
    }

    let svg = chart(&series);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/perf-append-threads.svg");
    std::fs::write(&out, svg).expect("write the chart");
    eprintln!("wrote {}", out.display());
}

/// A table of time per event for eventfile and its two peers, one row per `rows` value;
/// `ns(row, who)` gives the median (`who`: raw, eventfile or sqlite).
fn peer_table(first: &str, rows: [u64; 3], mut ns: impl FnMut(u64, &str) -> Option<f64>) {
    println!(
        "| {first} | raw write + fdatasync | eventfile | SQLite | eventfile vs raw | eventfile vs SQLite |"
    );
    println!("|---|---|---|---|---|---|");
    let cell = |v: Option<f64>| {
        v.map_or("–".into(), |ns| {
            format!("{} ({}/s)", time(ns), rate(1e9 / ns))
        })
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", b / a),
        _ => "–".into(),
    };
    for row in rows {
        let (raw, ef, sq) = (ns(row, "raw"), ns(row, "eventfile"), ns(row, "sqlite"));
        println!(
            "| {row} | {} | {} | {} | {} | {} |",
            cell(raw),
            cell(ef),
            cell(sq),
            ratio(ef, raw),
            ratio(ef, sq)
        );
    }
}

/// A line chart of events/s against thread count (1, 4, 16 on a log scale).
fn chart(series: &[(&str, Vec<(u64, f64)>)]) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (80.0, 160.0, 40.0, 60.0);
    let max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    // Ticks at a round step (1, 2 or 5 times a power of ten), about five of them.
    let rough = max / 5.0;
    let mag = 10f64.powf(rough.log10().floor());
    let tick = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&t| t >= rough)
        .unwrap_or(10.0 * mag);
    let ticks = (max / tick).ceil().max(1.0) as u32;
    let top_value = tick * f64::from(ticks);
    let x = |t: u64| left + (t as f64).log2() / 4.0 * (w - left - right);
    let y = |v: f64| h - bottom - v / top_value * (h - top - bottom);
    let colors = ["#888888", "#1f77b4", "#d62728"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Durable appends of one event: events per second</text>\n",
        (left + w - right) / 2.0
    );
    for k in 0..=ticks {
        let v = tick * f64::from(k);
        s += &format!(
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#e0e0e0\"/>\n\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>\n",
            y(v),
            w - right,
            left - 8.0,
            y(v) + 4.0,
            rate(v)
        );
    }
    for t in [1u64, 4, 16] {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t}</text>\n",
            x(t),
            h - bottom + 18.0
        );
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">appending threads</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        (left + w - right) / 2.0,
        h - 18.0,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        s += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\"{}\"/>\n",
            path.join(" ")
        );
        for &(t, v) in pts {
            s += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"/>\n",
                x(t),
                y(v)
            );
        }
        let ly = top + 20.0 + i as f64 * 22.0;
        s += &format!(
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2.5\"/>\n\
             <text x=\"{2}\" y=\"{3}\">{name}</text>\n",
            w - right + 16.0,
            w - right + 40.0,
            w - right + 46.0,
            ly + 4.0
        );
    }
    s + "</svg>\n"
}
