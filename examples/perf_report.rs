//! Turns one run of `benches/one_run.sh` into `docs/performance.md`'s generated part: the
//! targets with what the run measured and whether each is met, and the tables behind them.
//! Every figure comes from the run's own output directory (criterion's estimates under
//! `DIR/criterion`, each other step's printout in `DIR/<step>.txt`), so the page is one run's.
//!
//! ```sh
//! benches/one_run.sh                    # runs everything, then this with --write
//! cargo run --release --example perf_report -- --run target/one-run/DATE [--write docs/performance.md]
//! ```
//!
//! With `--write FILE`, the text between FILE's `<!-- one-run: begin -->` and
//! `<!-- one-run: end -->` lines is replaced; the markdown also goes to stdout. It writes
//! `docs/perf-append-threads.svg` (durable append throughput against thread count) beside it.
//! A step the run lacks (no PostgreSQL server, say) leaves its cells as "–" and its targets
//! as "not measured".

use std::fmt::Write as _;
use std::path::PathBuf;

const BEGIN: &str = "<!-- one-run: begin -->";
const END: &str = "<!-- one-run: end -->";

/// One run's output directory.
struct Run {
    dir: PathBuf,
}

impl Run {
    /// Criterion's median estimate for a benchmark id, in nanoseconds per iteration.
    fn ns(&self, id: &str) -> Option<f64> {
        let path = self
            .dir
            .join("criterion")
            .join(id)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    }

    /// A step's standard output (or error, with `.err`); empty when the run lacks it.
    fn text(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// The first line of `file` starting with `prefix`.
    fn line(&self, file: &str, prefix: &str) -> Option<String> {
        self.text(file)
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    }
}

/// A duration as the benches print it, in nanoseconds: Rust's `Debug` form (`1.5ms`,
/// `81.237µs`, `2.1s`, `12ns`) or with a space (`408 µs`, `2.35 ms`).
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches([',', ';', ')']);
    // A negative one is a latency measured from an append's return to an event that arrived
    // before it (the subscribe bench's p50, when most do).
    let (sign, s) = match s.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, s),
    };
    let at = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let value: f64 = sign * s[..at].parse::<f64>().ok()?;
    let scale = match s[at..].trim() {
        "s" => 1e9,
        "ms" => 1e6,
        "µs" | "us" => 1e3,
        "ns" => 1.0,
        _ => return None,
    };
    Some(value * scale)
}

/// The text after `key` in `line`, up to the next separator word.
fn after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    Some(line[at..].trim_start())
}

/// The duration right after `key` in `line`.
fn time_after(line: &str, key: &str) -> Option<f64> {
    let rest = after(line, key)?;
    // "408 µs (least ...)" or "2.3ms, p98": a number, maybe a space, a unit.
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    parse_time(first).or_else(|| parse_time(&format!("{first} {}", words.next()?)))
}

/// The number right after `key` in `line` (digits, `.`, and `,` as a thousands separator).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = after(line, key)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(rest.len());
    rest[..end]
        .trim_end_matches([',', '.'])
        .replace(',', "")
        .parse()
        .ok()
}

fn time(ns: f64) -> String {
    if ns.abs() >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns.abs() >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns.abs() >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn opt_time(ns: Option<f64>) -> String {
    ns.map_or("–".into(), time)
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

/// `peer / ours` as "1.23x" (above 1: ours is faster), or "–".
fn ratio(ours: Option<f64>, peer: Option<f64>) -> String {
    match (ours, peer) {
        (Some(a), Some(b)) => format!("{:.2}x", b / a),
        _ => "–".into(),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The lower and upper quartiles.
fn quartiles(mut v: Vec<f64>) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 4], v[(v.len() * 3) / 4]))
}

/// A target, what the run measured against it, and whether it holds.
struct Target {
    what: &'static str,
    measured: String,
    /// `None`: not measured in this run.
    met: Option<bool>,
    /// Missed by less than the run can tell apart (the hand-SQL targets: within 2%).
    parity: bool,
}

impl Target {
    /// A target on `peer / ours` (above 1: ours is faster) of at least `bound`: the ratio and
    /// both times (`per` says what a time is for, e.g. " per event"), and the verdict.
    fn compared(
        what: &'static str,
        ours: Option<f64>,
        peer: Option<f64>,
        bound: f64,
        per: &str,
    ) -> Target {
        Target {
            what,
            measured: format!(
                "{} ({} vs {}{per})",
                ratio(ours, peer),
                opt_time(ours),
                opt_time(peer)
            ),
            met: ours.zip(peer).map(|(a, b)| b / a >= bound),
            parity: false,
        }
    }
}

/// The targets table's verdict cell.
fn verdict(t: &Target) -> &'static str {
    match t.met {
        Some(true) => "met",
        Some(false) if t.parity => "at parity (within 2%)",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// `value >= bound` when both are known.
fn at_least(value: Option<f64>, bound: f64) -> Option<bool> {
    value.map(|v| v >= bound)
}

fn at_most(value: Option<f64>, bound: f64) -> Option<bool> {
    value.map(|v| v <= bound)
}

/// Rounds of an alternating bench: each side's medians and each round's ratio.
#[derive(Default)]
struct Alternated {
    ours_wall: Option<f64>,
    peer_wall: Option<f64>,
    ours_cpu: Option<f64>,
    peer_cpu: Option<f64>,
    /// Per round, peer time over ours (above 1: ours is faster): wall, the reading thread's
    /// CPU, and the whole process's CPU (a read-ahead thread's included).
    rounds_wall: Vec<f64>,
    rounds_cpu: Vec<f64>,
    rounds_process: Vec<f64>,
}

impl Alternated {
    fn per_round(&self) -> Option<f64> {
        median(self.rounds_wall.clone())
    }

    /// "1.95x (quartiles 1.80x to 2.10x, 15 rounds)".
    fn describe(&self, v: &[f64]) -> String {
        match (median(v.to_vec()), quartiles(v.to_vec())) {
            (Some(m), Some((q1, q3))) => format!(
                "{m:.2}x (quartiles {q1:.2}x to {q3:.2}x, {} rounds)",
                v.len()
            ),
            _ => "–".into(),
        }
    }
}

/// One side's times in one round: wall, the reading thread's CPU, the process's CPU.
type Times = (f64, f64, f64);

/// `read_cpu`'s rounds of `what` (`read_all`, `read_stream_100`, `read_streams_varied`):
/// eventfile against SQLite, wall and CPU time.
fn read_cpu(run: &Run, what: &str) -> Alternated {
    // round -> (wall, thread CPU, process CPU) for eventfile and SQLite
    let mut by_round: std::collections::BTreeMap<u64, [Option<Times>; 2]> = Default::default();
    for line in run.text("read_cpu.err").lines() {
        let Some(rest) = line.strip_prefix("round ") else {
            continue;
        };
        let Some((round, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Some((name, _)) = rest.split_once(':') else {
            continue;
        };
        let side = match name.strip_prefix(what).and_then(|s| s.strip_prefix('/')) {
            Some("eventfile") => 0,
            Some("sqlite") => 1,
            _ => continue,
        };
        if let (Ok(round), Some(wall), Some(cpu)) = (
            round.parse::<u64>(),
            time_after(line, "wall "),
            time_after(line, ", cpu "),
        ) {
            let process = time_after(line, "process cpu ").unwrap_or(cpu);
            by_round.entry(round).or_default()[side] = Some((wall, cpu, process));
        }
    }
    let mut a = Alternated::default();
    let (mut ow, mut pw, mut oc, mut pc) = (vec![], vec![], vec![], vec![]);
    for [ours, peer] in by_round.values() {
        if let (Some(o), Some(p)) = (ours, peer) {
            ow.push(o.0);
            pw.push(p.0);
            oc.push(o.1);
            pc.push(p.1);
            a.rounds_wall.push(p.0 / o.0);
            a.rounds_cpu.push(p.1 / o.1);
            a.rounds_process.push(p.2 / o.2);
        }
    }
    (a.ours_wall, a.peer_wall, a.ours_cpu, a.peer_cpu) =
        (median(ow), median(pw), median(oc), median(pc));
    a
}

/// One comparison of `backends_alt`: the backend's and the peer's medians (wall, and the
/// server's CPU where printed) and the per-round ratio with its quartiles.
#[derive(Default, Clone)]
struct AltPair {
    ours_wall: Option<f64>,
    peer_wall: Option<f64>,
    per_round: Option<f64>,
    quartiles: Option<(f64, f64)>,
    rounds: Option<f64>,
}

fn backends_alt(run: &Run, comparison: &str, peer: &str) -> AltPair {
    let text = run.text("backends_alt.txt");
    let rounds = text
        .lines()
        .find_map(|l| l.split_once(" rounds;").and_then(|(n, _)| n.parse().ok()));
    let mut current = String::new();
    let mut ours = None;
    let mut pair = AltPair {
        rounds,
        ..AltPair::default()
    };
    let mut in_peer = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') && line.contains(" wall ") {
            current = line.split(':').next().unwrap_or("").to_owned();
            ours = time_after(line, "wall ");
            in_peer = false;
        } else if let Some(rest) = trimmed.strip_prefix("vs ") {
            in_peer = current == comparison && rest.split(':').next() == Some(peer);
            if in_peer {
                pair.ours_wall = ours;
                pair.peer_wall = time_after(line, "wall ");
            }
        } else if trimmed.starts_with("ratio ") && in_peer {
            pair.per_round = after(line, "per round ")
                .and_then(|r| r.split('x').next())
                .and_then(|n| n.parse().ok());
            pair.quartiles = after(line, "quartiles ")
                .and_then(|r| r.split(')').next())
                .and_then(|q| q.split_once('-'))
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            in_peer = false;
        }
    }
    pair
}

impl AltPair {
    fn describe(&self) -> String {
        match (self.per_round, self.quartiles) {
            (Some(r), Some((q1, q3))) => format!(
                "{r:.2}x per round (quartiles {q1:.2}x to {q3:.2}x, {} rounds; medians {} against {})",
                self.rounds.unwrap_or(0.0),
                opt_time(self.ours_wall),
                opt_time(self.peer_wall)
            ),
            _ => "–".into(),
        }
    }
}

/// What `examples/scale.rs` printed for one size.
#[derive(Default)]
struct Scale {
    events: Option<f64>,
    streams: Option<f64>,
    open: Option<f64>,
    resident_after_open: Option<String>,
    peak_after_read_mib: Option<f64>,
    peak_after_read: Option<String>,
    first_read: Option<f64>,
    read: Option<f64>,
    stream_events: Option<f64>,
    filter: Option<f64>,
    filter_events: Option<f64>,
    count: Option<f64>,
    append: Option<f64>,
    append_p98: Option<f64>,
    built: Option<String>,
}

fn scale(run: &Run, step: &str) -> Scale {
    let out = format!("{step}.txt");
    let mut s = Scale::default();
    if let Some(l) = run.line(&out, "events: ") {
        s.events = number_after(&l, "events: ");
        s.streams = number_after(&l, "streams: ");
    }
    s.open = run
        .line(&out, "clean open: ")
        .and_then(|l| time_after(&l, "clean open: "));
    s.resident_after_open = run
        .line(&out, "resident after open: ")
        .map(|l| l["resident after open: ".len()..].to_owned());
    if let Some(l) = run.line(&out, "peak resident after opening and reading one stream: ") {
        let rest = &l["peak resident after opening and reading one stream: ".len()..];
        s.peak_after_read_mib = number_after(rest, "");
        s.peak_after_read = Some(rest.to_owned());
    }
    if let Some(l) = run.line(&out, "one stream of ") {
        s.stream_events = number_after(&l, "one stream of ");
        s.first_read = time_after(&l, "first read ");
        s.read = time_after(&l, "then median ");
    }
    if let Some(l) = run.line(&out, "type filter, ") {
        s.filter_events = number_after(&l, "type filter, ");
        s.filter = time_after(&l, "(streamed): ");
        s.count = time_after(&l, "count: ");
    }
    if let Some(l) = run.line(&out, "durable single append: ") {
        s.append = time_after(&l, "median ");
        s.append_p98 = time_after(&l, "p98 ");
    }
    s.built = run.line(&out, "built ").map(|l| {
        l.trim_start_matches("built ")
            .split(" events in ")
            .nth(1)
            .and_then(|r| r.split_once(" streams "))
            .map_or(l.clone(), |(_, r)| r.replace(['(', ')'], ""))
    });
    s
}

/// The server load test's JSON line whose `measure` starts with `measure`.
fn load(run: &Run, measure: &str) -> Option<serde_json::Value> {
    run.text("server-load.txt")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["measure"]
                .as_str()
                .is_some_and(|m| m.starts_with(measure))
        })
}

/// `generate`'s wall times, in seconds, one per run.
fn generate(run: &Run) -> Vec<(f64, String)> {
    (1..=9)
        .filter_map(|k| {
            let text = run.text(&format!("generate-{k}.time"));
            let line = text.lines().last()?.to_owned();
            let secs = line.split(' ').next()?.parse().ok()?;
            Some((secs, line))
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut write) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--run" => dir = args.next().map(PathBuf::from),
            "--write" => write = args.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: perf_report --run DIR [--write docs/performance.md]");
                std::process::exit(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!(
            "usage: perf_report --run DIR [--write docs/performance.md] (benches/one_run.sh makes DIR)"
        );
        std::process::exit(2);
    };
    let run = Run { dir };
    let (markdown, series) = report(&run);
    print!("{markdown}");
    if let Some(doc) = write {
        let text = std::fs::read_to_string(&doc).expect("read the document to write into");
        let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
            eprintln!("{} has no {BEGIN} ... {END} markers", doc.display());
            std::process::exit(2);
        };
        let updated = format!("{}{BEGIN}\n\n{markdown}\n{}", &text[..b], &text[e..]);
        std::fs::write(&doc, updated).expect("write the document");
        let svg = doc.with_file_name("perf-append-threads.svg");
        std::fs::write(&svg, chart(&series)).expect("write the chart");
        eprintln!("wrote {} and {}", doc.display(), svg.display());
    }
}

type Series = Vec<(&'static str, Vec<(u64, f64)>)>;

/// The generated part of the page, and the append chart's series.
fn report(run: &Run) -> (String, Series) {
    let mut out = String::new();
    let o = &mut out;
    let m = |id: &str| run.ns(id);
    let info = run.text("run.txt");
    let loads: Vec<f64> = run
        .text("load.txt")
        .lines()
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let (lo, hi) = (
        loads.iter().copied().fold(f64::INFINITY, f64::min),
        loads.iter().copied().fold(0.0, f64::max),
    );
    let _ = writeln!(
        o,
        "Generated by `examples/perf_report.rs` from one run of `benches/one_run.sh` ({}; \
         1-minute load average {lo:.1} to {hi:.1} at the steps' starts and ends). Each step's \
         command and load average: the run directory's `load.txt`; below, each table says its \
         command.\n",
        info.lines().collect::<Vec<_>>().join(", ")
    );

    // ---- the figures the targets need ----
    let th = |who: &str, t: u64| m(&format!("durable_append_threads/{who}/{t}"));
    let batch = |who: &str, n: u64| m(&format!("durable_batch/{who}/{n}")).map(|v| v / n as f64);
    let read_all = read_cpu(run, "read_all");
    let stream = read_cpu(run, "read_stream_100");
    let varied = read_cpu(run, "read_streams_varied");
    let (s1, s10) = (scale(run, "scale-1m"), scale(run, "scale-10m"));
    let sub = |name: &str, key: &str| {
        run.line("subscribe.txt", &format!("subscribe_latency/{name}:"))
            .and_then(|l| time_after(&l, key))
    };
    let catch_up = run
        .line("subscribe.txt", "catch_up: ")
        .and_then(|l| number_after(&l, "throughput "));
    let idle = run
        .line("subscribe.txt", "idle_follower: over")
        .and_then(|l| number_after(&l, "ms of CPU, "));
    let gens = generate(run);
    let gen_median = median(gens.iter().map(|g| g.0).collect());
    let http = load(run, "HTTP appends");
    let sse = load(run, "SSE fan-out");
    let pg_lone = backends_alt(run, "append", "plain");
    let pg_lone_tx = backends_alt(run, "append", "plain-tx");
    let pg = |id: &str| m(&format!("backends_append/{id}"));
    let pg_batch = |id: &str| m(&format!("backends_batch-100/{id}"));

    let mut targets = vec![
        Target::compared(
            "1 event per append, 1 thread, durable: at least 0.9x the raw loop",
            th("eventfile", 1),
            th("raw", 1),
            0.9,
            "",
        ),
        Target::compared(
            "1 event per append, 16 threads: at least 5x SQLite with 16 threads",
            th("eventfile", 16),
            th("sqlite", 16),
            5.0,
            " per event",
        ),
        Target::compared(
            "16 threads: at least 5x eventfile's own single-thread rate",
            th("eventfile", 16),
            th("eventfile", 1),
            5.0,
            " per event",
        ),
        Target::compared(
            "batches of 1,000 (issue 16 item 5): at least 0.5x the raw loop",
            batch("eventfile", 1000),
            batch("raw", 1000),
            0.5,
            " per event",
        ),
        Target::compared(
            "batches of 1,000: at least 5x SQLite",
            batch("eventfile", 1000),
            batch("sqlite", 1000),
            5.0,
            " per event",
        ),
        Target::compared(
            "bulk load, every event in a new stream (issue 16 item 4): `append_multi` at least 0.8x a single-stream batch of 1,000",
            batch("eventfile_new_streams", 1000),
            batch("eventfile", 1000),
            0.8,
            " per event",
        ),
        Target::compared(
            "the same for `import` (what `eventfile import` and `generate` use), against `import` into one stream",
            batch("import_new_streams", 1000),
            batch("import_one_stream", 1000),
            0.8,
            " per event",
        ),
        Target {
            what: "issue 15: `eventfile generate --events 1000000` in at most 5 s",
            measured: match gen_median {
                Some(med) => format!(
                    "median {med:.2} s of {} runs ({})",
                    gens.len(),
                    gens.iter()
                        .map(|g| format!("{:.2} s", g.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "–".into(),
            },
            met: at_most(gen_median, 5.0),
            parity: false,
        },
        Target {
            what: "`read_all` producing `RecordedEvent`s (issue 16 item 3): at least 2x SQLite",
            measured: format!(
                "{} in wall time; CPU: {} on the reading thread, {} for the whole process",
                read_all.describe(&read_all.rounds_wall),
                read_all.describe(&read_all.rounds_cpu),
                read_all.describe(&read_all.rounds_process)
            ),
            met: at_least(read_all.per_round(), 2.0),
            parity: false,
        },
        Target {
            what: "one 100-event stream (issue 16 item 3): at least 2x SQLite",
            measured: format!(
                "{} in wall time, CPU {}",
                stream.describe(&stream.rounds_wall),
                stream.describe(&stream.rounds_cpu)
            ),
            met: at_least(stream.per_round(), 2.0),
            parity: false,
        },
        Target {
            what: "issue 16: clean open of 1,000,000 events at most 5 ms",
            measured: format!("{} (`scale` at 1,000,000)", opt_time(s1.open)),
            met: at_most(s1.open, 5e6),
            parity: false,
        },
        Target {
            what: "issue 16: clean open of 10,000,000 events within 1.5x of that (7.5 ms)",
            measured: format!("{} (`scale` at 10,000,000)", opt_time(s10.open)),
            met: at_most(s10.open, 7.5e6),
            parity: false,
        },
        Target {
            what: "issue 16: peak resident memory after opening 1,000,000 events and reading one stream at most 20 MiB",
            measured: s1.peak_after_read.clone().unwrap_or("–".into()),
            met: at_most(s1.peak_after_read_mib, 20.0),
            parity: false,
        },
        Target {
            what: "the same at 10,000,000 events within 1.5x (30 MiB)",
            measured: s10.peak_after_read.clone().unwrap_or("–".into()),
            met: at_most(s10.peak_after_read_mib, 30.0),
            parity: false,
        },
        Target {
            what: "recovering a full 64 MiB active segment after a crash: under 1 s",
            measured: opt_time(m("recovery/open_full_active_segment")),
            met: at_most(m("recovery/open_full_active_segment"), 1e9),
            parity: false,
        },
        Target {
            what: "a subscription in the writer's process gets an event: p50 under 50 µs after the append returns",
            measured: format!(
                "p50 {}, p99 {}",
                opt_time(sub("in_process", "p50 ")),
                opt_time(sub("in_process", "p99 "))
            ),
            met: at_most(sub("in_process", "p50 "), 50e3),
            parity: false,
        },
        Target {
            what: "a read-only handle in another process gets it: p50 under 1 ms, p99 under 10 ms",
            measured: format!(
                "p50 {}, p99 {}",
                opt_time(sub("cross_process", "p50 ")),
                opt_time(sub("cross_process", "p99 "))
            ),
            met: at_most(sub("cross_process", "p50 "), 1e6)
                .zip(at_most(sub("cross_process", "p99 "), 10e6))
                .map(|(a, b)| a && b),
            parity: false,
        },
        Target {
            what: "a subscription catching up from 0 over 1,000,000 events: at least 0.9x `read_all`",
            measured: catch_up.map_or("–".into(), |r| {
                format!("{r:.3}x (median of the interleaved passes)")
            }),
            met: at_least(catch_up, 0.9),
            parity: false,
        },
        Target {
            what: "an idle follower: under 1% of a core",
            measured: idle.map_or("–".into(), |p| format!("{p}% of a core")),
            met: at_most(idle, 1.0),
            parity: false,
        },
        Target {
            what: "HTTP (`eventfile serve`), 64 connections, 1 event per append: at least 0.5x the in-process 16-thread rate",
            measured: http.as_ref().map_or("–".into(), |h| {
                format!(
                    "{}x ({}/s, p50 {} ms, p99 {} ms)",
                    h["ratio_to_in_process"],
                    rate(h["per_sec"].as_f64().unwrap_or(0.0)),
                    h["p50_ms"],
                    h["p99_ms"]
                )
            }),
            met: http
                .as_ref()
                .and_then(|h| h["ratio_to_in_process"].as_f64())
                .map(|r| r >= 0.5),
            parity: false,
        },
        Target {
            what: "1,000 SSE subscribers each get every event of a 10,000-event burst",
            measured: sse.as_ref().map_or("–".into(), |s| {
                format!("{} of {} complete", s["complete"], s["subscribers"])
            }),
            met: sse
                .as_ref()
                .map(|s| s["complete"] == s["subscribers"] && s["complete"].as_u64() > Some(0)),
            parity: false,
        },
        Target {
            what: "issue 12: PostgreSQL lone append within 0.8x of a plain INSERT (autocommit, one round trip)",
            measured: pg_lone.describe(),
            met: at_least(pg_lone.per_round, 0.8),
            parity: false,
        },
        Target {
            what: "the same against the INSERT in a transaction of its own (`BEGIN`, INSERT, `COMMIT`)",
            measured: pg_lone_tx.describe(),
            met: at_least(pg_lone_tx.per_round, 0.8),
            parity: false,
        },
        Target::compared(
            "issue 12: PostgreSQL, 16 threads at least 3x one thread",
            pg("postgres/16-threads"),
            pg("postgres/1-threads"),
            3.0,
            " per event",
        ),
        Target::compared(
            "issue 12: PostgreSQL batches of 100 at least 2x the plain INSERT loop",
            pg_batch("postgres"),
            pg_batch("postgres-plain"),
            2.0,
            " per batch",
        ),
    ];
    let queries = [
        ("pg-stream", "PostgreSQL, one stream"),
        ("pg-type", "PostgreSQL, type filter"),
        ("pg-tag", "PostgreSQL, tag filter"),
        ("sqlite-stream", "SQLite, one stream"),
        ("sqlite-type", "SQLite, type filter"),
        ("sqlite-tag", "SQLite, tag filter"),
    ];
    for (name, what) in queries {
        let p = backends_alt(run, name, "hand SQL");
        let met = at_least(p.per_round, 1.0);
        let parity = p.per_round.is_some_and(|r| r >= 0.98);
        targets.push(Target {
            what: match what {
                "PostgreSQL, one stream" => "issue 12: every query at least as fast as the same query by hand (per-round ratio at least 1.0): PostgreSQL, one stream",
                "PostgreSQL, type filter" => "… PostgreSQL, type filter",
                "PostgreSQL, tag filter" => "… PostgreSQL, tag filter",
                "SQLite, one stream" => "… SQLite, one stream",
                "SQLite, type filter" => "… SQLite, type filter",
                _ => "… SQLite, tag filter",
            },
            measured: p.describe(),
            met,
            parity,
        });
    }

    let _ = writeln!(o, "### Against the targets\n");
    let _ = writeln!(o, "| target | this run | |\n|---|---|---|");
    for t in &targets {
        let _ = writeln!(o, "| {} | {} | {} |", t.what, t.measured, verdict(t));
    }
    let missed = targets.iter().filter(|t| t.met == Some(false)).count();
    let unmeasured = targets.iter().filter(|t| t.met.is_none()).count();
    let _ = writeln!(
        o,
        "\n{} targets: {} met, {missed} missed, {unmeasured} not measured in this run.\n",
        targets.len(),
        targets.len() - missed - unmeasured
    );

    // ---- appends ----
    let _ = writeln!(
        o,
        "### Durable appends, one event each\n\n`cargo bench -p eventfile-bench --bench append`: \
         time per event (events/s); each thread appends to streams of its own.\n"
    );
    let mut series: Series = vec![
        ("raw loop", vec![]),
        ("eventfile", vec![]),
        ("SQLite", vec![]),
    ];
    peer_table(o, "threads", [1, 4, 16], |t, who| {
        let ns = th(who, t);
        let i = ["raw", "eventfile", "sqlite"]
            .iter()
            .position(|w| *w == who);
        if let (Some(ns), Some(i)) = (ns, i) {
            series[i].1.push((t, 1e9 / ns));
        }
        ns
    });
    let _ = writeln!(
        o,
        "\n![durable appends against threads](perf-append-threads.svg)\n"
    );

    let _ = writeln!(
        o,
        "### Durable batches, one thread\n\nThe same bench: time per event (events/s), one \
         `fdatasync` per batch on every side.\n"
    );
    peer_table(o, "events per append", [10, 100, 1000], |n, who| {
        batch(who, n)
    });
    let _ = writeln!(
        o,
        "\nBulk loads of 1,000 events, durable and without `fdatasync` (`batch_no_sync`: the \
         engine's own work), time per event:\n\n| | durable | without fsync |\n|---|---|---|"
    );
    for (name, id) in [
        ("`append`, one stream", "eventfile"),
        (
            "`append_multi`, every event a new stream",
            "eventfile_new_streams",
        ),
        ("`import`, one stream", "import_one_stream"),
        ("`import`, every event a new stream", "import_new_streams"),
    ] {
        let _ = writeln!(
            o,
            "| {name} | {} | {} |",
            opt_time(batch(id, 1000)),
            opt_time(m(&format!("batch_no_sync/{id}/1000")).map(|v| v / 1000.0))
        );
    }

    // ---- reads ----
    let _ = writeln!(
        o,
        "\n### Reads and queries, 1,000,000 events in 10,000 streams\n\n`cargo bench -p \
         eventfile-bench --bench query` (criterion medians; both sides collect `RecordedEvent`s \
         into a `Vec`, `read_all` drops each on both):\n\n| query | eventfile | SQLite | \
         eventfile vs SQLite |\n|---|---|---|---|"
    );
    for (name, id) in [
        ("read one 100-event stream", "query/read_stream_100"),
        ("`read_all`, 1,000,000 events", "read_all"),
        ("type filter, 1%", "query/type_1pct"),
        ("one-hour time range", "query/time_1h"),
        ("tag filter, 1%", "query/tag_1pct"),
        ("count of a type filter", "query/count_type"),
    ] {
        let (a, b) = if id == "read_all" {
            (m("read_all/eventfile"), m("read_all/sqlite"))
        } else {
            (m(&format!("{id}_eventfile")), m(&format!("{id}_sqlite")))
        };
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} |",
            opt_time(a),
            opt_time(b),
            ratio(a, b)
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
        let _ = writeln!(o, "| {name} | {} | | |", opt_time(m(id)));
    }
    let _ = writeln!(
        o,
        "\nThe same reads alternated with SQLite round by round (`cargo bench -p eventfile-bench \
         --bench read_cpu 15`; a ratio is SQLite's time over eventfile's in the same round):\n\n\
         | read | eventfile wall / CPU | SQLite wall / CPU | per round, wall | per round, CPU | \
         per round, the process's CPU |\n|---|---|---|---|---|---|"
    );
    for (name, a) in [
        ("`read_all`, 1,000,000 events", &read_all),
        ("one 100-event stream, the same each time", &stream),
        ("a different 100-event stream each time", &varied),
    ] {
        let _ = writeln!(
            o,
            "| {name} | {} / {} | {} / {} | {} | {} | {} |",
            opt_time(a.ours_wall),
            opt_time(a.ours_cpu),
            opt_time(a.peer_wall),
            opt_time(a.peer_cpu),
            a.describe(&a.rounds_wall),
            a.describe(&a.rounds_cpu),
            a.describe(&a.rounds_process)
        );
    }

    // ---- scale ----
    let _ = writeln!(
        o,
        "\n### At scale\n\n`cargo run --release --example scale -- --events N --streams S`: \
         built without fsync, closed, then measured in a fresh process.\n\n| | 1,000,000 \
         events | 10,000,000 events |\n|---|---|---|"
    );
    let both = |f: &dyn Fn(&Scale) -> String| (f(&s1), f(&s10));
    let rows: Vec<(&str, (String, String))> = vec![
        (
            "events, streams",
            both(&|s| {
                format!(
                    "{}, {}",
                    rate(s.events.unwrap_or(0.0)),
                    rate(s.streams.unwrap_or(0.0))
                )
            }),
        ),
        ("built", both(&|s| s.built.clone().unwrap_or("–".into()))),
        ("clean open", both(&|s| opt_time(s.open))),
        (
            "resident after the open",
            both(&|s| s.resident_after_open.clone().unwrap_or("–".into())),
        ),
        (
            "peak resident after opening and reading one stream",
            both(&|s| s.peak_after_read.clone().unwrap_or("–".into())),
        ),
        (
            "one stream: first read, then the median read",
            both(&|s| {
                format!(
                    "{} events: {}, {}",
                    s.stream_events.unwrap_or(0.0),
                    opt_time(s.first_read),
                    opt_time(s.read)
                )
            }),
        ),
        (
            "a type filter (1%), streamed",
            both(&|s| {
                format!(
                    "{} events: {}",
                    rate(s.filter_events.unwrap_or(0.0)),
                    opt_time(s.filter)
                )
            }),
        ),
        ("`count` of it", both(&|s| opt_time(s.count))),
        (
            "durable single append: median, p98",
            both(&|s| format!("{}, {}", opt_time(s.append), opt_time(s.append_p98))),
        ),
    ];
    for (name, (a, b)) in rows {
        let _ = writeln!(o, "| {name} | {a} | {b} |");
    }

    // ---- subscriptions ----
    let _ = writeln!(
        o,
        "\n### Subscriptions\n\n`cargo bench -p eventfile-bench --bench subscribe`:\n"
    );
    let _ = writeln!(
        o,
        "| from an append's return to the event out of the subscription | events | p50 | p99 | \
         p99.9 | max | before the append returned |\n|---|---|---|---|---|---|---|"
    );
    for (name, what) in [
        ("in_process", "in the writer's process"),
        (
            "cross_process",
            "in a read-only process following the writer",
        ),
    ] {
        let line = run.line("subscribe.txt", &format!("subscribe_latency/{name}: "));
        let get = |key: &str| line.as_deref().and_then(|l| time_after(l, key));
        let early = line
            .as_deref()
            .and_then(|l| l.split("; ").nth(1))
            .and_then(|r| r.split(" reached").next())
            .unwrap_or("–");
        let _ = writeln!(
            o,
            "| {what} | {} | {} | {} | {} | {} | {early} |",
            line.as_deref()
                .and_then(|l| number_after(l, ": "))
                .map_or("–".into(), rate),
            opt_time(get("p50 ")),
            opt_time(get("p99 ")),
            opt_time(get("p99.9 ")),
            opt_time(get("max ")),
        );
    }
    let _ = writeln!(
        o,
        "\nCatch-up from 0 over 1,000,000 events: the subscription {} against `read_all` {} \
         (criterion), {} in the interleaved passes. An idle follower: {}.",
        opt_time(m("catch_up/subscription")),
        opt_time(m("catch_up/read_all")),
        catch_up.map_or("–".into(), |r| format!("{r:.3}x `read_all`'s throughput")),
        idle.map_or("–".into(), |p| format!("{p}% of a core")),
    );

    // ---- backends ----
    let _ = writeln!(
        o,
        "\n### The backends side by side\n\n`cargo bench -p eventfile-bench --bench backends` \
         (criterion medians; appends per event, batches per batch of 100, reads per read; \
         `plain`: the prepared INSERT on a copy of the backend's table, autocommit; \
         `plain-tx`: the same in `BEGIN`/`COMMIT`; hand SQL: the same query written by hand \
         against the backend's tables, decoded into the same `RecordedEvent`s):\n\n\
         | | file | SQLite | PostgreSQL | PostgreSQL plain | PostgreSQL plain-tx | hand SQL (SQLite / PostgreSQL) |\n\
         |---|---|---|---|---|---|---|"
    );
    for t in [1, 16] {
        let id = |name: &str| m(&format!("backends_append/{name}/{t}-threads"));
        let _ = writeln!(
            o,
            "| 1 event per append, {t} thread{} | {} | {} | {} | {} | {} | |",
            if t == 1 { "" } else { "s" },
            opt_time(id("file")),
            opt_time(id("sqlite")),
            opt_time(id("postgres")),
            opt_time(id("postgres-plain")),
            opt_time(id("postgres-plain-tx")),
        );
    }
    let _ = writeln!(
        o,
        "| batch of 100 | {} | {} | {} | {} | | |",
        opt_time(pg_batch("file")),
        opt_time(pg_batch("sqlite")),
        opt_time(pg_batch("postgres")),
        opt_time(pg_batch("postgres-plain")),
    );
    for (name, group) in [
        ("one stream of 100 events", "backends_read-stream-100"),
        ("type filter, 1,000 of 20,000", "backends_type-filter-1000"),
        ("tag filter, 400 of 20,000", "backends_tag-filter-400"),
    ] {
        let id = |n: &str| m(&format!("{group}/{n}"));
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | | | {} / {} |",
            opt_time(id("file")),
            opt_time(id("sqlite")),
            opt_time(id("postgres")),
            opt_time(id("sqlite-sql")),
            opt_time(id("postgres-sql")),
        );
    }
    let _ = writeln!(
        o,
        "\nAlternated round by round (`cargo bench -p eventfile-bench --bench backends_alt 300`; \
         a ratio is the peer's time over the backend's in the same round):\n\n\
         | comparison | per round | backend | peer |\n|---|---|---|---|"
    );
    for (name, peer, what) in [
        (
            "append",
            "plain",
            "PostgreSQL lone append against the autocommit INSERT",
        ),
        (
            "append",
            "plain-tx",
            "PostgreSQL lone append against the INSERT in its own transaction",
        ),
        (
            "pg-stream",
            "hand SQL",
            "PostgreSQL, one stream, against hand SQL",
        ),
        (
            "pg-type",
            "hand SQL",
            "PostgreSQL, type filter, against hand SQL",
        ),
        (
            "pg-tag",
            "hand SQL",
            "PostgreSQL, tag filter, against hand SQL",
        ),
        (
            "sqlite-stream",
            "hand SQL",
            "SQLite, one stream, against hand SQL",
        ),
        (
            "sqlite-type",
            "hand SQL",
            "SQLite, type filter, against hand SQL",
        ),
        (
            "sqlite-tag",
            "hand SQL",
            "SQLite, tag filter, against hand SQL",
        ),
    ] {
        let p = backends_alt(run, name, peer);
        let per = match (p.per_round, p.quartiles) {
            (Some(r), Some((a, b))) => format!("{r:.2}x ({a:.2}x to {b:.2}x)"),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {what} | {per} | {} | {} |",
            opt_time(p.ours_wall),
            opt_time(p.peer_wall)
        );
    }

    // ---- models ----
    let _ = writeln!(
        o,
        "\n### Aggregates and projections\n\n`cargo bench -p eventfile-bench --bench models`: \
         loading one aggregate of 1,000 events among 10,000, and a projection rebuilt over \
         1,000,000 events:\n\n| | file | memory |\n|---|---|---|"
    );
    for (name, what) in [
        ("read_stream", "`read_stream` of its 1,000 events"),
        ("replay", "`Repository::load`, no snapshot"),
        ("snapshot", "`Repository::load` from a snapshot"),
    ] {
        let _ = writeln!(
            o,
            "| {what} | {} | {} |",
            opt_time(m(&format!("aggregate_load/{name}_file"))),
            opt_time(m(&format!("aggregate_load/{name}_memory")))
        );
    }
    let _ = writeln!(
        o,
        "\n| over 1,000,000 events | time |\n|---|---|\n| `read_all`, counted by type | {} |\n\
         | projection, checkpoint at most once a second | {} |\n\
         | projection, checkpoint at every batch of 1,000 | {} |",
        opt_time(m("projection_catch_up/read_all")),
        opt_time(m("projection_catch_up/runner_default")),
        opt_time(m("projection_catch_up/runner_checkpoint_every_batch")),
    );

    // ---- generate and the server ----
    let _ = writeln!(
        o,
        "\n### `eventfile generate --events 1000000 --seed 7`\n\nEach into a fresh directory, \
         timed by `/usr/bin/time`:\n"
    );
    for (k, (_, line)) in gens.iter().enumerate() {
        let _ = writeln!(o, "- run {}: {line}", k + 1);
    }
    let _ = writeln!(
        o,
        "\n### The HTTP server\n\n`cargo run --release -p eventfile-server --example load` \
         (16,000 appends from 64 connections, then 1,000 SSE subscribers and a 10,000-event \
         burst):\n"
    );
    let in_process: Vec<f64> = run
        .text("server-load.txt")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["measure"]
                .as_str()
                .is_some_and(|m| m.starts_with("in-process"))
        })
        .filter_map(|v| v["per_sec"].as_f64())
        .collect();
    let _ = writeln!(
        o,
        "| in process, 16 threads (before / after) | HTTP, 64 connections | p50 | p99 | ratio | \
         SSE subscribers complete | all deliveries | burst appended in |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let f = |v: Option<&serde_json::Value>, k: &str| {
        v.and_then(|v| v[k].as_f64())
            .map_or("–".into(), |n| format!("{n}"))
    };
    let _ = writeln!(
        o,
        "| {} /s | {}/s | {} ms | {} ms | {} | {} of {} | {} s ({}/s) | {} s |",
        in_process
            .iter()
            .map(|r| rate(*r))
            .collect::<Vec<_>>()
            .join(" / "),
        http.as_ref()
            .and_then(|h| h["per_sec"].as_f64())
            .map_or("–".into(), rate),
        f(http.as_ref(), "p50_ms"),
        f(http.as_ref(), "p99_ms"),
        f(http.as_ref(), "ratio_to_in_process"),
        f(sse.as_ref(), "complete"),
        f(sse.as_ref(), "subscribers"),
        f(sse.as_ref(), "all_delivered_secs"),
        sse.as_ref()
            .and_then(|h| h["deliveries_per_sec"].as_f64())
            .map_or("–".into(), rate),
        f(sse.as_ref(), "burst_append_secs"),
    );
    (out, series)
}

/// A table of time per event for eventfile and its two peers, one row per `rows` value;
/// `ns(row, who)` gives the median (`who`: raw, eventfile or sqlite).
fn peer_table(
    o: &mut String,
    first: &str,
    rows: [u64; 3],
    mut ns: impl FnMut(u64, &str) -> Option<f64>,
) {
    let _ = writeln!(
        o,
        "| {first} | raw write + fdatasync | eventfile | SQLite | eventfile vs raw | eventfile vs SQLite |\n\
         |---|---|---|---|---|---|"
    );
    let cell = |v: Option<f64>| {
        v.map_or("–".into(), |ns| {
            format!("{} ({}/s)", time(ns), rate(1e9 / ns))
        })
    };
    for row in rows {
        let (raw, ef, sq) = (ns(row, "raw"), ns(row, "eventfile"), ns(row, "sqlite"));
        let _ = writeln!(
            o,
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
