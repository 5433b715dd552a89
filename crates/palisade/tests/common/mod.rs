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
    wait_until_serving(port, "server did not start");
    // The bootstrap message is written before the app serves, so it is
    // already in the pipe: collect until the pipe stays quiet.
    let mut printed = String::new();
    while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
        printed.push_str(&line);
        printed.push('\n');
    }
    (server, printed)
}

/// Starts `serve` like [`serve`], with its stdout and stderr appended to
/// `log` (set `RUST_LOG` in `env` to choose what it logs).
pub fn serve_logged(url: &str, port: u16, env: &[(&str, &str)], log: &std::path::Path) -> Server {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the server log");
    let child = Command::new(BIN)
        .args(["--database-url", url, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .expect("spawn serve");
    let server = Server(child);
    wait_until_serving(port, &format!("server did not start; see {log:?}"));
    server
}

/// Whether `GET /healthz` on the port answers 200 within `timeout`.
pub fn answers_health(port: u16, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(timeout));
    if socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Waits until the server answers HTTP: `serve` binds its port before it
/// loads the model, so an open port alone does not mean it serves yet.
pub fn wait_until_serving(port: u16, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers_health(port, Duration::from_millis(500)) {
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server of the test's own — initdb'd into a temp dir, on a
/// free loopback port, trust auth, fsync off — that the test may stop and
/// start again (the machine's shared server must never be stopped: other
/// tests use it). Debian's binaries from `/usr/lib/postgresql/*/bin/`;
/// when the test runs as root (PostgreSQL refuses to) they run as the
/// `postgres` OS user through `runuser`. Stopped and removed on drop.
pub struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates and starts the server. `Err` says why it cannot run here
    /// (no binaries, no `postgres` user): the caller prints `skipped: …`.
    /// Any other failure panics.
    pub fn launch() -> Result<PrivatePostgres, String> {
        let bin = postgres_bin_dir()
            .ok_or("no PostgreSQL binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin/")?;
        let as_postgres = id(&["-u"]).as_deref() == Some("0");
        let owner = if as_postgres {
            let uid = id(&["-u", "postgres"]).ok_or("there is no `postgres` OS user")?;
            let gid = id(&["-g", "postgres"]).ok_or("there is no `postgres` OS group")?;
            let parse = |v: String| v.parse::<u32>().map_err(|e| format!("id: {e}"));
            Some((parse(uid)?, parse(gid)?))
        } else {
            None
        };
        if as_postgres && Command::new("runuser").arg("--help").output().is_err() {
            return Err(
                "runuser is missing (needed to run PostgreSQL as the postgres user)".into(),
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "palisade-private-pg-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("create the PostgreSQL temp dir");
        let pg = PrivatePostgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&pg.dir, Some(uid), Some(gid))
                .expect("give the PostgreSQL temp dir to the postgres user");
        }
        let data = pg.data_dir();
        let data = data.to_str().expect("UTF-8 temp path");
        pg.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        // Written into the data dir, so `start` after `stop` uses them too.
        let settings = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            pg.port,
            pg.dir.display()
        );
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(pg.data_dir().join("postgresql.conf"))
            .expect("open postgresql.conf");
        std::io::Write::write_all(&mut conf, settings.as_bytes()).expect("write postgresql.conf");
        pg.start();
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) on the same data dir and port; returns
    /// once it accepts connections.
    pub fn start(&self) {
        let data = self.data_dir();
        let log = self.log_path();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("UTF-8 path"),
                "-l",
                log.to_str().expect("UTF-8 path"),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server at once (`-m immediate`, as a crash would): its
    /// connections are cut and new ones refused until [`start`](Self::start).
    pub fn stop(&self) {
        self.run("pg_ctl", &self.stop_args());
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.join("postgres.log")
    }

    fn stop_args(&self) -> [String; 8] {
        [
            "-D".into(),
            self.data_dir().display().to_string(),
            "-m".into(),
            "immediate".into(),
            "-w".into(),
            "-t".into(),
            "30".into(),
            "stop".into(),
        ]
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[impl AsRef<std::ffi::OsStr>]) {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        assert!(
            output.status.success(),
            "{program} failed ({}): {}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self
                .command("pg_ctl")
                .args(self.stop_args())
                .stdin(Stdio::null())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin/` holding initdb and pg_ctl.
fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `id ARGS`, trimmed; `None` when it fails (no such user).
fn id(args: &[&str]) -> Option<String> {
    let output = Command::new("id").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `test` on a fresh, migrated database of `backend` (its URL for the
/// `palisade` processes, its store for the test's own checks), then removes
/// the database. Without PostgreSQL configured it prints a `skipped:` line.
pub async fn on_database<F, Fut>(backend: palisade_store::testing::Backend, what: &str, test: F)
where
    F: FnOnce(String, std::sync::Arc<dyn palisade_store::Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use palisade_store::testing::{POSTGRES_URL_VAR, TestDatabase};
    let Some(db) = TestDatabase::create(backend).await else {
        println!("skipped: {what} on PostgreSQL ({POSTGRES_URL_VAR} is not set)");
        return;
    };
    test(db.url.clone(), db.store.clone()).await;
    db.remove().await;
}

/// A user `username` and an API token for them, made through the store.
pub async fn account(
    store: &dyn palisade_store::Store,
    username: &str,
) -> (palisade_store::User, String) {
    let user = store
        .create_user(&palisade_store::NewUser {
            username: username.into(),
            ..palisade_store::NewUser::default()
        })
        .await
        .expect("user");
    let token = palisade_server::auth::issue_token(store, &user, None)
        .await
        .expect("token");
    (user, token)
}

/// A thread of `user` named `name` (an existing thread: no title call).
pub async fn thread(
    store: &dyn palisade_store::Store,
    user: &palisade_store::User,
    name: &str,
) -> palisade_store::Thread {
    let session = store.get_or_create_session(user.id).await.expect("session");
    store.create_thread(session.id, name).await.expect("thread")
}

/// The thread's messages in sequence order (replaced rows too with
/// `include_history`).
pub async fn messages(
    store: &dyn palisade_store::Store,
    thread: uuid::Uuid,
    include_history: bool,
) -> Vec<palisade_store::Message> {
    store
        .list_messages(&palisade_store::MessageFilter {
            scope: palisade_store::Scope::All,
            thread: Some(thread),
            is_flagged: None,
            include_history,
            limit: None,
        })
        .await
        .expect("list messages")
}

/// `POST /api/chat/stream/` on a node.
pub async fn post_stream(port: u16, token: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/chat/stream/"))
        .header("Authorization", format!("Token {token}"))
        .json(body)
        .send()
        .await
        .expect("stream request")
}
