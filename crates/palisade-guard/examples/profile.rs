//! Ad-hoc timing of the guard's parts on a long text (development aid). Reports on-CPU time
//! per call from `/proc/thread-self/schedstat`, which is robust on a shared machine.
//!
//! `cargo run --release -p palisade-guard --example profile -- [UNIT_TEXT] [BYTES]`
//! (`PROFILE_ONLY_SCAN=K`: only `Guard::scan`, K times — for `perf record` and
//! `valgrind --tool=callgrind --toggle-collect='palisade_guard::Guard::scan'`).

use palisade_guard::{Guard, GuardConfig, PiiDetector, PiiThresholds, normalize::normalize};

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()))
        .unwrap_or(0)
}

fn time<F: FnMut()>(n: u32, mut f: F) -> f64 {
    let t = cpu_ns();
    for _ in 0..n {
        f();
    }
    (cpu_ns() - t) as f64 / f64::from(n) / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let unit = std::env::args().nth(1).unwrap_or_else(|| {
        "Our research group runs molecular dynamics simulations on the HPC cluster every \
         week. Each job needs around 256 cores and two terabytes of memory. "
            .to_owned()
    });
    let len: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let mut text = String::new();
    while text.len() < len {
        text.push_str(&unit);
    }
    let t = std::time::Instant::now();
    let g = Guard::new(&GuardConfig::default())?;
    println!("Guard::new {:?}", t.elapsed());
    let pii = PiiDetector::new(PiiThresholds::default())?;
    let det = palisade_guard::InjectionDetector::new(&[])?;
    let n = if len > 10_000 { 300 } else { 100_000 };
    if let Ok(k) = std::env::var("PROFILE_ONLY_SCAN") {
        // Only `Guard::scan`, `k` times (for `perf record` / `valgrind --tool=callgrind`).
        let k: u32 = k.parse().unwrap_or(n);
        let all = time(k, || {
            std::hint::black_box(g.scan(&text));
        });
        println!(
            "len {} chars {} scan {all:.2} µs => {:.0} MB/s",
            text.len(),
            text.chars().count(),
            text.len() as f64 / all
        );
        return Ok(());
    }
    let norm = time(n, || {
        std::hint::black_box(normalize(&text));
    });
    let ac = time(n, || {
        std::hint::black_box(det.candidates(&text));
    });
    let inj = time(n, || {
        std::hint::black_box(g.scan_injection(&text));
    });
    let p = time(n, || {
        std::hint::black_box(pii.scan(&text));
    });
    let all = time(n, || {
        std::hint::black_box(g.scan(&text));
    });
    println!(
        "len {} (cpu µs/call) normalize {norm:.2} inj-ac {ac:.2} injection {inj:.2} pii {p:.2} scan {all:.2} => {:.0} MB/s, {:.0} msgs/s",
        text.len(),
        text.len() as f64 / all,
        1e6 / all
    );
    Ok(())
}
