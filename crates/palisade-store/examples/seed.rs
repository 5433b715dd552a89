//! Seeds a database for the API benchmark (`scripts/bench-api.sh`): 100
//! users with one small thread each, and one user, `heavy`, with 10,000
//! threads and 100,000 messages, every tenth thread flagged.
//!
//! Usage: `cargo run --release -p palisade-store --example seed -- <DATABASE_URL>`

use std::sync::Arc;

use palisade_store::{Action, DatabaseUrl, Detection, NewMessage, NewUser, Role, Severity, Store};

const USERS: usize = 100;
const HEAVY_THREADS: usize = 10_000;
const MESSAGES_PER_THREAD: i64 = 10;
/// Concurrent writers: PostgreSQL benefits, SQLite serialises them anyway.
const WRITERS: usize = 8;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn seed_thread(store: Arc<dyn Store>, session_id: i64, n: usize) -> Result<(), Error> {
    let thread = store
        .create_thread(
            session_id,
            &format!("Benchmark thread {n} about cluster quotas"),
        )
        .await?;
    for index in 1..=MESSAGES_PER_THREAD {
        let role = if index % 2 == 1 {
            Role::User
        } else {
            Role::Assistant
        };
        let message = store
            .insert_message(
                thread.id,
                &NewMessage {
                    role,
                    content: format!(
                        "{role} message {index} in thread {n}: how do I resize my VM?"
                    ),
                    sequence_index: index,
                    replaces: None,
                },
            )
            .await?;
        if n.is_multiple_of(10) && index == 1 {
            let detection = Detection {
                is_flagged: true,
                severity: Severity::High,
                injection_categories: vec!["instruction_override".into()],
                pii_categories: vec![],
                action_taken: Action::Block,
            };
            store.record_detection(message.id, &detection).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: seed <DATABASE_URL>")?;
    let store = palisade_store::connect(&DatabaseUrl::new(url)).await?;
    store.migrate().await?;

    for i in 0..USERS {
        let username = if i == 0 {
            "heavy".to_owned()
        } else {
            format!("user{i:03}")
        };
        let user = store
            .create_user(&NewUser {
                username: username.clone(),
                full_name: format!("Bench User {i}"),
                email: format!("{username}@bench.test"),
                ..NewUser::default()
            })
            .await?;
        let session = store.get_or_create_session(user.id).await?;
        if i == 0 {
            let mut started = 0;
            while started < HEAVY_THREADS {
                let batch: Vec<_> = (started..(started + WRITERS).min(HEAVY_THREADS))
                    .map(|n| tokio::spawn(seed_thread(store.clone(), session.id, n)))
                    .collect();
                started += batch.len();
                for task in batch {
                    task.await??;
                }
            }
        } else {
            seed_thread(store.clone(), session.id, i).await?;
        }
    }
    eprintln!("seeded {USERS} users; `heavy` has {HEAVY_THREADS} threads");
    Ok(())
}
