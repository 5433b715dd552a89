//! HTTP test harness: a real Palisade server on a loopback port, over a fresh
//! database of either backend, with helpers to seed users, tokens, threads
//! and messages through the store.

#![allow(dead_code)]

use std::sync::Arc;

use palisade_server::AppState;
use palisade_store::{Detection, Message, NewMessage, NewUser, Role, Store, Thread, User};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running server and the store behind it.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

/// A user and a valid API token for them.
pub struct Account {
    pub user: User,
    pub token: String,
}

impl TestServer {
    pub async fn start(store: Arc<dyn Store>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState {
            store: store.clone(),
        };
        tokio::spawn(palisade_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            store,
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a user with the given role flags and a token for them.
    pub async fn account(&self, username: &str, staff: bool, support: bool) -> Account {
        let user = self
            .store
            .create_user(&NewUser {
                username: username.into(),
                full_name: format!("{username} Example"),
                email: format!("{username}@corp.test"),
                is_staff: staff,
                is_support: support,
            })
            .await
            .expect("create user");
        let token = palisade_server::auth::issue_token(self.store.as_ref(), &user, None)
            .await
            .expect("issue token");
        Account { user, token }
    }

    pub async fn user(&self, username: &str) -> Account {
        self.account(username, false, false).await
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
        self.store
            .insert_message(
                thread.id,
                &NewMessage {
                    role,
                    content: format!("{role} message {index}"),
                    sequence_index: index,
                    replaces: replaces.map(|m| m.id),
                },
            )
            .await
            .expect("message")
    }

    pub async fn flag(&self, message: &Message, detection: Detection) {
        self.store
            .record_detection(message.id, &detection)
            .await
            .expect("record detection");
    }
}

/// The 32-hex form the API uses.
pub fn hex(uuid: &uuid::Uuid) -> String {
    uuid.simple().to_string()
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
