//! Clients that misbehave against a real `palisade serve` process: a
//! connection that trickles its headers or idles is closed after the
//! header-read timeout while others keep being answered; the open
//! connections are capped; a second `serve` on a busy port fails at once;
//! answers read one slow byte at a time are stored in full while the
//! server's memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_llm::testing::{FakeOpenAi, FakeResponse};
use palisade_store::Store;
use palisade_store::testing::Backend;

use common::{BIN, account, answers_health, free_port, messages, on_database, serve, thread};

/// Whether the server closed `socket` (end of stream or reset) within
/// `within`, reading and discarding what it sends meanwhile.
fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 256];
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    while Instant::now() < deadline {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Issue 11, item 2: a client sending its headers one byte at a time is
/// disconnected after the header-read timeout, and so is a keep-alive
/// connection left idle; meanwhile other clients are answered.
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed() {
    let (_server, port) =
        serve_on_sqlite("slow-headers", &[("PALISADE_HEADER_READ_TIMEOUT", "2s")]);

    let mut trickle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let started = Instant::now();
    let request =
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed = false;
    for byte in request {
        if trickle.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        // Other clients are served while this one trickles.
        assert!(answers_health(port, Duration::from_secs(2)));
        if closed_within(&mut trickle, Duration::from_millis(300)) {
            closed = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a trickling client was never disconnected"
        );
    }
    assert!(closed, "the whole slow request was accepted");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Idle after a response: closed after the same timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).expect("response");
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle keep-alive connection stayed open"
    );
}

/// Issue 11, item 2: at most `PALISADE_MAX_CONNECTIONS` are open; another
/// client waits until one closes, then is answered.
#[tokio::test(flavor = "multi_thread")]
async fn open_connections_are_capped() {
    let (_server, port) = serve_on_sqlite(
        "connection-cap",
        &[
            ("PALISADE_MAX_CONNECTIONS", "2"),
            ("PALISADE_HEADER_READ_TIMEOUT", "60s"),
        ],
    );
    // Wait for the readiness probe's connection to be closed.
    std::thread::sleep(Duration::from_millis(300));
    let first = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let second = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !answers_health(port, Duration::from_secs(1)),
        "a third connection was served while two were open"
    );
    drop(first);
    assert!(answers_health(port, Duration::from_secs(5)));
    drop(second);
}

/// Issue 11, item 4: `serve` takes its port before loading the model, so
/// a second one on a busy port fails at once and says how to choose
/// another.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_port_fails_at_once() {
    let dir = TempDir::new("busy-port");
    let url = format!("sqlite://{}", dir.0.join("palisade.db").display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let started = Instant::now();
    let output = std::process::Command::new(BIN)
        .args(["--database-url", &url, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        // The embedded model would take seconds to load.
        .env("PALISADE_LLM_PROVIDER", "local")
        .env("PALISADE_MODEL_FETCH", "false")
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--bind"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A 5 MB answer: deltas of 4 KiB.
fn big_answer() -> (FakeResponse, String) {
    let delta: String = "All work and no play makes a long answer. "
        .repeat(100)
        .chars()
        .take(4096)
        .collect();
    let deltas: Vec<&str> = (0..1280).map(|_| delta.as_str()).collect();
    (FakeResponse::answer(&deltas, None), deltas.concat())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Asks for an answer on a raw connection, reading nothing yet.
async fn ask_raw(
    store: &dyn Store,
    alice: &palisade_store::User,
    token: &str,
    port: u16,
    name: &str,
) -> (TcpStream, uuid::Uuid) {
    let t = thread(store, alice, name).await;
    let body = format!(
        "{{\"input\":\"Write a long story.\",\"thread_uuid\":\"{}\"}}",
        t.uuid.simple()
    );
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "POST /api/chat/stream/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Token {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).expect("request");
    (socket, t.uuid)
}

/// Issue 11, item 2: ten 5 MB answers, one after the other, each asked for
/// by a client that then reads ten bytes a second and stays connected.
/// Every answer is generated and stored in full at once; the node then
/// keeps only the last 64 KiB of each answer's lines for its slow client
/// (hyper queues at most 64 KiB more per connection), not the 5 MB. A
/// client that speeds up gets the rest, from the database, ending with the
/// final line.
async fn slow_readers_cost_bounded_memory(url: String, store: Arc<dyn Store>) {
    const ANSWERS: usize = 10;
    let llm = FakeOpenAi::start().await;
    let (alice, token) = account(store.as_ref(), "alice").await;
    let port = free_port();
    let base_url = llm.base_url();
    let (server, _) = serve(
        &url,
        port,
        &[
            ("PALISADE_LLM_PROVIDER", "openai"),
            ("PALISADE_LLM_BASE_URL", &base_url),
            ("PALISADE_MAX_GENERATIONS_PER_USER", "0"),
        ],
    );
    let pid = server.0.id();
    let mut readers: Vec<TcpStream> = Vec::new();
    for i in 0..ANSWERS {
        let (response, expected) = big_answer();
        llm.push(response);
        let (socket, thread) =
            ask_raw(store.as_ref(), &alice, &token, port, &format!("t{i}")).await;
        readers.push(socket);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Ten bytes a second from every client so far.
            for socket in &mut readers {
                let mut ten = [0u8; 10];
                socket
                    .set_read_timeout(Some(Duration::from_millis(5)))
                    .expect("timeout");
                let _ = socket.read(&mut ten);
            }
            let rows = messages(store.as_ref(), thread, false).await;
            if let Some(answer) = rows.get(1).filter(|m| !m.is_generating) {
                assert_eq!(answer.content, expected, "stored in full");
                break;
            }
            assert!(Instant::now() < deadline, "answer {i} was not stored");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // What the node holds of the answers' lines for its (slow) readers:
    // the last 64 KiB of each, not the 5 MB.
    let scrape = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics");
    let held: f64 = scrape
        .lines()
        .find_map(|line| line.strip_prefix("palisade_stream_transcript_bytes "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no transcript gauge in\n{scrape}"));
    let bound = (ANSWERS * 80 * 1024) as f64;
    assert!(
        held <= bound,
        "{held} bytes of lines held for {ANSWERS} answers"
    );
    eprintln!(
        "{ANSWERS} answers of 5 MB with slow readers: {held} bytes of lines held, RSS {} KiB",
        rss_kib(pid)
    );

    // The last one catches up: it gets every line, ending with the final
    // line.
    let mut fast = readers.pop().expect("a reader");
    fast.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&received[received.len().saturating_sub(300)..])
        .contains("assistant_message_uuid")
    {
        assert!(Instant::now() < deadline, "the final line did not arrive");
        match fast.read(&mut buffer) {
            Ok(0) | Err(_) => panic!("the stream ended before its final line"),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    // Every piece of the answer came through (each delta is a line of its
    // own; the chunked framing may split a phrase here and there).
    let text = String::from_utf8_lossy(&received);
    assert!(text.matches("makes a long answer").count() >= 1280 * 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_slow_readers_cost_bounded_memory() {
    on_database(
        Backend::Sqlite,
        "slow readers",
        slow_readers_cost_bounded_memory,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slow_readers_cost_bounded_memory() {
    on_database(
        Backend::Postgres,
        "slow readers",
        slow_readers_cost_bounded_memory,
    )
    .await;
}

/// A folder of the test's own, removed when the test ends however it ends.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "palisade-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `serve` without a model on a fresh SQLite database: the server (stopped
/// and its folder removed on drop) and its port.
fn serve_on_sqlite(name: &str, env: &[(&str, &str)]) -> ((common::Server, TempDir), u16) {
    let dir = TempDir::new(name);
    let url = format!("sqlite://{}", dir.0.join("palisade.db").display());
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("PALISADE_CHAT_ENABLED", "false"));
    let (server, _) = serve(&url, port, &env);
    ((server, dir), port)
}
