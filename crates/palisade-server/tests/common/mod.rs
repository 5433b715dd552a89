//! HTTP test harness: a real Palisade server on a loopback port, over a fresh
//! database of either backend, with helpers to seed users, tokens, threads
//! and messages through the store.

#![allow(dead_code)]

pub mod browser;
pub mod chat;

use std::sync::Arc;

use palisade_server::{AppState, ChatSettings, InputGuard};
use palisade_store::{
    Action, AuditEvent, Detection, Message, MessageFilter, NewMessage, NewUser, Role, Scope,
    Severity, Store, Thread, User,
};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use chat::Streamed;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One default guard per test binary: building it compiles every pattern.
pub fn shared_guard() -> Arc<palisade_guard::Guard> {
    static GUARD: std::sync::OnceLock<Arc<palisade_guard::Guard>> = std::sync::OnceLock::new();
    GUARD
        .get_or_init(|| {
            Arc::new(
                palisade_guard::Guard::new(&palisade_guard::GuardConfig::default())
                    .expect("default guard"),
            )
        })
        .clone()
}

/// A running server and the store behind it.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    /// The server's running generations (to wait for background work).
    pub generations: Arc<palisade_server::Generations>,
    _shutdown: oneshot::Sender<()>,
}

/// A user and a valid API token for them.
pub struct Account {
    pub user: User,
    pub token: String,
}

impl TestServer {
    /// A server with the default guard and no model configured.
    pub async fn start(store: Arc<dyn Store>) -> TestServer {
        Self::start_with(store, shared_guard(), ChatSettings::new(None)).await
    }

    /// A server with this guard and these chat settings.
    pub async fn start_with(
        store: Arc<dyn Store>,
        guard: Arc<dyn InputGuard>,
        chat: ChatSettings,
    ) -> TestServer {
        Self::start_state(AppState::new(store, guard, chat)).await
    }

    /// A server for exactly this application state.
    pub async fn start_state(state: AppState) -> TestServer {
        let store = state.store.clone();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let generations = state.generations.clone();
        tokio::spawn(palisade_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            store,
            client: reqwest::Client::new(),
            generations,
            _shutdown: tx,
        }
    }

    /// Waits until no generation task runs on this server: the work after
    /// a response ends (a new thread's title) is done.
    pub async fn settle(&self) {
        for _ in 0..500 {
            if self.generations.tasks() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("generations still running after 10 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a user with the given role flags and a token for them.
    pub async fn account(&self, username: &str, staff: bool, support: bool) -> Account {
        self.create_account(&NewUser {
            username: username.into(),
            full_name: format!("{username} Example"),
            email: format!("{username}@corp.test"),
            is_staff: staff,
            is_support: support,
        })
        .await
    }

    /// Creates exactly this user and a token for them.
    pub async fn create_account(&self, new: &NewUser) -> Account {
        let user = self.store.create_user(new).await.expect("create user");
        let token = palisade_server::auth::issue_token(self.store.as_ref(), &user, None)
            .await
            .expect("issue token");
        Account { user, token }
    }

    pub async fn user(&self, username: &str) -> Account {
        self.account(username, false, false).await
    }

    pub async fn staff(&self, username: &str) -> Account {
        self.account(username, true, false).await
    }

    pub async fn support(&self, username: &str) -> Account {
        self.account(username, false, true).await
    }

    /// Any method, authenticated as `who`.
    pub async fn request(&self, method: Method, who: &Account, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Token {}", who.token))
            .send()
            .await
            .expect("request")
    }

    /// Any method, with no credentials.
    pub async fn anonymous(&self, method: Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET with a raw `Authorization` header value.
    pub async fn get_with_auth(&self, authorization: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Authorization", authorization)
            .send()
            .await
            .expect("request")
    }

    /// GET as `who`, asserting 200, returning the JSON body.
    pub async fn get_json(&self, who: &Account, path: &str) -> Value {
        let response = self.get(who, path).await;
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// The `name` of every thread a list request returns, in order.
    pub async fn thread_names(&self, who: &Account, path: &str) -> Vec<String> {
        names(&self.get_json(who, path).await, "name")
    }

    /// Audit events about `target` of one type.
    pub async fn audit_events(&self, target: &Account, event_type: &str) -> Vec<AuditEvent> {
        self.store
            .list_audit_events(Some(target.user.id))
            .await
            .expect("audit events")
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    /// GET with `Authorization: Token …`.
    pub async fn get(&self, who: &Account, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Authorization", format!("Token {}", who.token))
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, who: &Account, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Authorization", format!("Token {}", who.token))
            .send()
            .await
            .expect("request")
    }

    /// A thread owned by `who`, created through the store.
    pub async fn thread(&self, who: &Account, name: &str) -> Thread {
        let session = self
            .store
            .get_or_create_session(who.user.id)
            .await
            .expect("session");
        self.store
            .create_thread(session.id, name)
            .await
            .expect("thread")
    }

    pub async fn message(
        &self,
        thread: &Thread,
        role: Role,
        index: i64,
        replaces: Option<&Message>,
    ) -> Message {
        self.message_with(
            thread,
            role,
            index,
            replaces,
            &format!("{role} message {index}"),
        )
        .await
    }

    pub async fn message_with(
        &self,
        thread: &Thread,
        role: Role,
        index: i64,
        replaces: Option<&Message>,
        content: &str,
    ) -> Message {
        self.store
            .insert_message(
                thread.id,
                &NewMessage {
                    role,
                    content: content.into(),
                    sequence_index: index,
                    replaces: replaces.map(|m| m.id),
                },
            )
            .await
            .expect("message")
    }

    /// A user + assistant pair at `index`, `index + 1`.
    pub async fn exchange(&self, thread: &Thread, index: i64) -> (Message, Message) {
        let question = self.message(thread, Role::User, index, None).await;
        let answer = self.message(thread, Role::Assistant, index + 1, None).await;
        (question, answer)
    }

    /// The thread as the store sees it now (flags, counts, timestamps).
    pub async fn reload(&self, thread: &Thread) -> Thread {
        self.store
            .find_thread(
                &palisade_store::ThreadFilter::new(palisade_store::Scope::All),
                thread.uuid,
            )
            .await
            .expect("find thread")
            .expect("thread exists")
    }

    /// The thread with this uuid as the store sees it now.
    pub async fn reload_by_uuid(&self, uuid: uuid::Uuid) -> Thread {
        self.store
            .find_thread(
                &palisade_store::ThreadFilter::new(palisade_store::Scope::All),
                uuid,
            )
            .await
            .expect("find thread")
            .expect("thread exists")
    }

    pub async fn flag(&self, message: &Message, detection: Detection) {
        self.store
            .record_detection(message.id, &detection)
            .await
            .expect("record detection");
    }
}

/// Stream requests and what they stored.
impl TestServer {
    /// `POST /api/chat/stream/` with a JSON body, as `who`.
    pub async fn post_stream(&self, who: &Account, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/chat/stream/"))
            .header("Authorization", format!("Token {}", who.token))
            .json(body)
            .send()
            .await
            .expect("stream request")
    }

    /// Posts and reads the whole stream, asserting 200 and the NDJSON type,
    /// then waits for the work after the response (a new thread's title
    /// call), so the next scripted model response goes to the next request.
    pub async fn stream(&self, who: &Account, body: &Value) -> Streamed {
        let response = self.post_stream(who, body).await;
        let streamed = Streamed::read(response).await;
        self.settle().await;
        streamed
    }

    /// Every message of a thread, replaced rows included, in sequence order.
    pub async fn all_messages(&self, thread: Uuid) -> Vec<Message> {
        self.messages_of(thread, true).await
    }

    /// The thread's active messages in sequence order.
    pub async fn active_messages(&self, thread: Uuid) -> Vec<Message> {
        self.messages_of(thread, false).await
    }

    async fn messages_of(&self, thread: Uuid, include_history: bool) -> Vec<Message> {
        self.store
            .list_messages(&MessageFilter {
                scope: Scope::All,
                thread: Some(thread),
                is_flagged: None,
                include_history,
                limit: None,
            })
            .await
            .expect("list messages")
    }
}

/// The 32-hex form the API uses.
pub fn hex(uuid: &uuid::Uuid) -> String {
    uuid.simple().to_string()
}

/// A flagged guard verdict.
pub fn flagged(severity: Severity, action: Action, injection: &[&str], pii: &[&str]) -> Detection {
    Detection {
        is_flagged: true,
        severity,
        injection_categories: injection.iter().map(|c| c.to_string()).collect(),
        pii_categories: pii.iter().map(|c| c.to_string()).collect(),
        action_taken: action,
    }
}

/// Field names of the reference's serializers, in their order.
pub const SESSION_FIELDS: [&str; 6] = [
    "uuid",
    "user",
    "user_username",
    "user_full_name",
    "created",
    "modified",
];

pub const THREAD_FIELDS: [&str; 12] = [
    "uuid",
    "name",
    "chat_session",
    "flags",
    "is_archived",
    "message_count",
    "is_flagged",
    "max_severity",
    "user_username",
    "user_full_name",
    "created",
    "modified",
];

/// What staff and support see; regular users get only the first seven.
pub const MESSAGE_FIELDS: [&str; 12] = [
    "uuid",
    "thread",
    "role",
    "content",
    "sequence_index",
    "replaces",
    "created",
    "is_flagged",
    "severity",
    "injection_categories",
    "pii_categories",
    "action_taken",
];

/// The keys of a JSON object, in the order they were sent.
pub fn keys(object: &Value) -> Vec<&str> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// One string field of every object of a JSON array, in order.
pub fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} of {item}"))
                .to_owned()
        })
        .collect()
}

/// Asserts the API's UUID form: 32 lowercase hex characters.
pub fn assert_hex_uuid(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("uuid {value}"));
    assert!(
        text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a 32-hex uuid: {text}"
    );
}

/// Asserts `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`.
pub fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp {value}"));
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert!(
        text.len() == shape.len()
            && text.bytes().zip(shape.bytes()).all(|(c, s)| match s {
                b'd' => c.is_ascii_digit(),
                _ => c == s,
            }),
        "not a millisecond UTC timestamp: {text}"
    );
}

/// Asserts status and the exact JSON body of a response.
pub async fn assert_body(response: reqwest::Response, status: u16, expected: Value) {
    assert_eq!(response.status(), status, "{}", response.url());
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    assert_eq!(body, expected);
}

/// Asserts a 405 with DRF's body for `method`.
pub async fn assert_405(response: reqwest::Response, method: &str) {
    let detail = format!("Method \"{method}\" not allowed.");
    assert_body(response, 405, serde_json::json!({ "detail": detail })).await;
}

/// Asserts a 404 (never 403) for an object the caller may not see.
pub async fn assert_404(response: reqwest::Response) {
    assert_body(response, 404, serde_json::json!({"detail": "Not found."})).await;
}

/// A header's value as text, if present.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

/// Declares each `async fn(TestServer)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! http_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            async fn $name(store: std::sync::Arc<dyn palisade_store::Store>) {
                tests::$name(common::TestServer::start(store).await).await
            }
        )+
        palisade_store::test_on_both_backends!($($name),+);
    };
}
