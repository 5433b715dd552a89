//! Shared by the stream benchmarks (`stream_bench`, `durable_bench`):
//! running the release `palisade serve` as a child process on a loopback
//! port, the OpenAI-compatible SSE framing of the in-process upstream,
//! percentiles, and the process figures read from `/proc`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use serde_json::{Value, json};

/// A `palisade serve` child, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The admin API token the first start printed (`None` for a node that
    /// joined a database that already had users).
    pub token: Option<String>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (closed again at once; the server binds it next).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `BINARY serve` on a free loopback port with this environment,
/// waits until it accepts connections and returns it with the admin token
/// it printed on its first start. Its stdout is drained by a thread (so a
/// late write never meets a closed pipe); its stderr goes where `stderr`
/// says.
pub fn serve(binary: &str, env: &[(&str, String)], stderr: Stdio) -> Result<Server> {
    let port = free_port()?;
    let mut child = Command::new(binary)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut server = Server {
        child,
        port,
        token: None,
    };
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Keep draining after the receiver is gone.
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{binary} serve did not start within 60 s");
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("{binary} serve exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The bootstrap message is written before the listener binds, so it is
    // in the pipe by now: read until the pipe stays quiet.
    while let Ok(line) = received.recv_timeout(Duration::from_millis(300)) {
        if server.token.is_none() {
            server.token = line
                .split_whitespace()
                .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned);
        }
    }
    Ok(server)
}

/// One server-sent event.
pub fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The first event of a chat-completions stream.
pub fn role_chunk() -> Bytes {
    sse(&json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
}

/// A content delta.
pub fn delta(text: &str) -> Bytes {
    sse(&json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

/// The end of a chat-completions stream: `finish_reason` and `[DONE]`.
pub fn stop_chunks() -> [Bytes; 2] {
    [
        sse(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]
}

/// The value at rank `p` (0..=1) of sorted samples.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system, all threads) a process used so far, in ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of every process whose command name is `comm`, by pid.
pub fn cpu_ticks_named(comm: &str) -> std::collections::HashMap<u32, u64> {
    let mut found = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_it = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|name| name.trim_end() == comm);
        if is_it && let Some(ticks) = cpu_ticks(pid) {
            found.insert(pid, ticks);
        }
    }
    found
}

/// The machine's CPU counters from `/proc/stat`: (busy, steal, total) ticks.
pub fn machine_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    let steal = *v.get(7)?;
    Some((total - idle - steal, steal, total))
}
