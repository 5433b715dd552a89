//! Shared by the binary's end-to-end tests: running `palisade serve` as a
//! real process on a free loopback port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Kills the server when the test ends, however it ends.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `serve` with this extra environment and returns it with everything
/// it printed on stdout before it began listening (the bootstrap message, if
/// any).
pub fn serve(url: &str, port: u16, env: &[(&str, &str)]) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args(["--database-url", url, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The bootstrap message is written before the listener binds, so it is
    // already in the pipe: collect until the pipe stays quiet.
    let mut printed = String::new();
    while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
        printed.push_str(&line);
        printed.push('\n');
    }
    (server, printed)
}
