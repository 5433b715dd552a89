//! The [`Store`](crate::Store) implementation, written once for both drivers.
//!
//! All SQL is shared (see `sql.rs`); what differs per backend is passed in:
//! how a write transaction starts (SQLite must take the write lock up front
//! with `BEGIN IMMEDIATE`, or a read-then-write transaction can fail with
//! "database is locked"), and the row-lock clause (`FOR UPDATE` on PostgreSQL,
//! nothing on SQLite, where the transaction already excludes other writers).
//! A macro rather than generics because sqlx's per-driver trait bounds would
//! otherwise have to be spelled out on every method.

macro_rules! sql_store {
    (
        store = $store:ty,
        db = $db:ty,
        name = $name:literal,
        migrator = $migrator:expr,
        dialect = $dialect:expr,
        row_lock = $row_lock:literal,
        share_lock = $share_lock:literal,
        db_now = $db_now:literal $(,)?
    ) => {
        /// Steps shared by the message-writing operations, each inside the
        /// caller's write transaction.
        impl $store {
            /// Locks the thread row (PostgreSQL; SQLite's write transaction
            /// already excludes other writers). `NotFound` if it is gone.
            async fn lock_thread(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
            ) -> $crate::Result<()> {
                let found: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT id FROM threads WHERE id = $1",
                    $row_lock
                ))
                .bind(thread_id)
                .fetch_optional(&mut **tx)
                .await?;
                found.map(|_| ()).ok_or($crate::StoreError::NotFound("thread"))
            }

            async fn insert_row(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
                message: &$crate::NewMessage,
            ) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO messages (uuid, thread_id, role, content, sequence_index, \
                     replaces_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind($crate::rows::uuid_text(uuid::Uuid::new_v4()))
                .bind(thread_id)
                .bind(message.role.as_str())
                .bind(&message.content)
                .bind(message.sequence_index)
                .bind(message.replaces)
                .bind($crate::now().timestamp_micros())
                .fetch_one(&mut **tx)
                .await?)
            }

            /// The highest sequence index in the thread plus one.
            async fn next_index(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
            ) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT CAST(COALESCE(MAX(sequence_index), 0) + 1 AS BIGINT) \
                     FROM messages WHERE thread_id = $1",
                )
                .bind(thread_id)
                .fetch_one(&mut **tx)
                .await?)
            }

            /// The active (not replaced) message of `role` with the highest
            /// sequence index: its id and index.
            async fn last_active(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
                role: $crate::Role,
            ) -> $crate::Result<Option<(i64, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT m.id, m.sequence_index FROM messages m \
                     WHERE m.thread_id = $1 AND m.role = $2 \
                     AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.replaces_id = m.id) \
                     ORDER BY m.sequence_index DESC, m.id DESC LIMIT 1",
                )
                .bind(thread_id)
                .bind(role.as_str())
                .fetch_optional(&mut **tx)
                .await?)
            }

            /// The sequence index of a message of the thread; `NotFound` if it
            /// is not one.
            async fn index_of(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
                message_id: i64,
            ) -> $crate::Result<i64> {
                let index: Option<i64> = sqlx::query_scalar(
                    "SELECT sequence_index FROM messages WHERE id = $1 AND thread_id = $2",
                )
                .bind(message_id)
                .bind(thread_id)
                .fetch_optional(&mut **tx)
                .await?;
                index.ok_or($crate::StoreError::NotFound("message"))
            }

            /// The user's quota row, created if missing and locked, with
            /// expired counters reset (and written back).
            async fn locked_quota(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: i64,
            ) -> $crate::Result<$crate::TokenQuota> {
                let now = $crate::now();
                sqlx::query(
                    "INSERT INTO token_quotas (user_id, daily_reset_at, weekly_reset_at, \
                     monthly_reset_at) VALUES ($1, $2, $2, $2) ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id)
                .bind(now.timestamp_micros())
                .execute(&mut **tx)
                .await?;
                let sql = format!(
                    "SELECT {} FROM token_quotas WHERE user_id = $1{}",
                    $crate::quota::QUOTA_COLUMNS,
                    $row_lock
                );
                let mut quota = sqlx::query_as::<_, $crate::quota::QuotaRow>(sqlx::AssertSqlSafe(sql))
                    .bind(user_id)
                    .fetch_one(&mut **tx)
                    .await?
                    .into_model();
                if quota.reset_expired(now) {
                    Self::write_quota_usage(tx, user_id, &quota).await?;
                }
                Ok(quota)
            }

            async fn write_quota_usage(
                tx: &mut sqlx::Transaction<'static, $db>,
                user_id: i64,
                quota: &$crate::TokenQuota,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE token_quotas SET daily_usage = $1, weekly_usage = $2, \
                     monthly_usage = $3, daily_reset_at = $4, weekly_reset_at = $5, \
                     monthly_reset_at = $6 WHERE user_id = $7",
                )
                .bind(quota.usage[0])
                .bind(quota.usage[1])
                .bind(quota.usage[2])
                .bind(quota.reset_at[0].timestamp_micros())
                .bind(quota.reset_at[1].timestamp_micros())
                .bind(quota.reset_at[2].timestamp_micros())
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Whether `lease` holds the thread now, by the database's clock.
            async fn holds_lease(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
                lease: &str,
            ) -> $crate::Result<bool> {
                let held: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT id FROM threads WHERE id = $1 AND generation_lease = $2 \
                     AND generation_lease_expires > ",
                    $db_now
                ))
                .bind(thread_id)
                .bind(lease)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(held.is_some())
            }

            /// Reads the thread's state, asks [`place_answer`] where the
            /// answer goes, and writes it (and, for a reload of an empty
            /// thread, the question): the user message id and the answer's.
            ///
            /// [`place_answer`]: $crate::placement::place_answer
            async fn place_answer(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
                to: &$crate::AnswerTo,
                content: &str,
                generating: Option<&str>,
            ) -> $crate::Result<(Option<i64>, i64)> {
                use $crate::placement::{Slot, ThreadState};
                let slot = |found: Option<(i64, i64)>| found.map(|(id, index)| Slot { id, index });
                let question = match to {
                    $crate::AnswerTo::Message { user_message_id }
                    | $crate::AnswerTo::Edit { user_message_id } => Some(Slot {
                        id: *user_message_id,
                        index: Self::index_of(tx, thread_id, *user_message_id).await?,
                    }),
                    $crate::AnswerTo::Reload { .. } => None,
                };
                let state = ThreadState {
                    question,
                    last_question: slot(Self::last_active(tx, thread_id, $crate::Role::User).await?),
                    last_answer: slot(Self::last_active(tx, thread_id, $crate::Role::Assistant).await?),
                    next_index: Self::next_index(tx, thread_id).await?,
                };
                let plan = $crate::placement::place_answer(to, &state)
                    .ok_or($crate::StoreError::NotFound("message"))?;
                let mut user_id = plan.question_id;
                if let (Some(index), $crate::AnswerTo::Reload { input }) = (plan.new_question_at, to) {
                    let question = $crate::NewMessage {
                        role: $crate::Role::User,
                        content: input.clone(),
                        sequence_index: index,
                        replaces: None,
                    };
                    user_id = Some(Self::insert_row(tx, thread_id, &question).await?);
                }
                let answer = $crate::NewMessage {
                    role: $crate::Role::Assistant,
                    content: content.to_owned(),
                    sequence_index: plan.index,
                    replaces: plan.replaces,
                };
                let answer_id = Self::insert_row(tx, thread_id, &answer).await?;
                if let Some(lease) = generating {
                    sqlx::query("UPDATE messages SET generating_lease = $1 WHERE id = $2")
                        .bind(lease)
                        .bind(answer_id)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok((user_id, answer_id))
            }

            async fn touch_thread(
                tx: &mut sqlx::Transaction<'static, $db>,
                thread_id: i64,
            ) -> $crate::Result<()> {
                sqlx::query("UPDATE threads SET modified = $1 WHERE id = $2")
                    .bind($crate::now().timestamp_micros())
                    .bind(thread_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn answer_by_ids(
                &self,
                user_id: Option<i64>,
                assistant_id: i64,
            ) -> $crate::Result<$crate::Answer> {
                let user_message = match user_id {
                    Some(id) => Some(self.message_by_id(id).await?),
                    None => None,
                };
                Ok($crate::Answer {
                    user_message,
                    assistant_message: self.message_by_id(assistant_id).await?,
                })
            }

            async fn message_by_id(&self, id: i64) -> $crate::Result<$crate::Message> {
                let sql = format!("{} WHERE m.id = $1", $crate::sql::MESSAGE_SELECT);
                sqlx::query_as::<_, $crate::rows::MessageRow>(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?
                    .into_model()
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn migrate(&self) -> $crate::Result<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            fn pool_connections(&self) -> $crate::PoolConnections {
                $crate::PoolConnections {
                    open: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                }
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, user: &$crate::NewUser) -> $crate::Result<$crate::User> {
                let sql = format!(
                    "INSERT INTO users (uuid, username, full_name, email, is_staff, is_support, \
                     is_active, created) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7) RETURNING {}",
                    $crate::sql::USER_COLUMNS
                );
                sqlx::query_as::<_, $crate::rows::UserRow>(sqlx::AssertSqlSafe(sql))
                    .bind($crate::rows::uuid_text(uuid::Uuid::new_v4()))
                    .bind(&user.username)
                    .bind(&user.full_name)
                    .bind(&user.email)
                    .bind(user.is_staff)
                    .bind(user.is_support)
                    .bind($crate::now().timestamp_micros())
                    .fetch_one(&self.pool)
                    .await?
                    .into_model()
            }

            async fn user_by_username(&self, username: &str) -> $crate::Result<Option<$crate::User>> {
                let sql = format!(
                    "SELECT {} FROM users WHERE username = $1",
                    $crate::sql::USER_COLUMNS
                );
                sqlx::query_as::<_, $crate::rows::UserRow>(sqlx::AssertSqlSafe(sql))
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::rows::UserRow::into_model)
                    .transpose()
            }

            async fn count_users(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn set_user_active(&self, user_id: i64, active: bool) -> $crate::Result<()> {
                let done = sqlx::query("UPDATE users SET is_active = $1 WHERE id = $2")
                    .bind(active)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn insert_token(
                &self,
                user_id: i64,
                token: &$crate::NewToken,
            ) -> $crate::Result<$crate::StoredToken> {
                let row: $crate::rows::TokenRow = sqlx::query_as(
                    "INSERT INTO api_tokens (user_id, prefix, hash, created, expires) \
                     VALUES ($1, $2, $3, $4, $5) \
                     RETURNING id, user_id, prefix, hash, created, expires",
                )
                .bind(user_id)
                .bind(&token.prefix)
                .bind(&token.hash)
                .bind($crate::now().timestamp_micros())
                .bind(token.expires.map(|t| t.timestamp_micros()))
                .fetch_one(&self.pool)
                .await?;
                Ok(row.into_model())
            }

            async fn token_by_prefix(
                &self,
                prefix: &str,
            ) -> $crate::Result<Option<($crate::StoredToken, $crate::User)>> {
                sqlx::query_as::<_, $crate::rows::TokenOwnerRow>(
                    "SELECT k.id AS token_id, k.prefix AS token_prefix, k.hash AS token_hash, \
                     k.created AS token_created, k.expires AS token_expires, u.id, u.uuid, \
                     u.username, u.full_name, u.email, u.is_staff, u.is_support, u.is_active, \
                     u.created FROM api_tokens k JOIN users u ON u.id = k.user_id \
                     WHERE k.prefix = $1",
                )
                .bind(prefix)
                .fetch_optional(&self.pool)
                .await?
                .map($crate::rows::TokenOwnerRow::into_model)
                .transpose()
            }

            async fn revoke_token(&self, token_id: i64) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                    .bind(token_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_user_tokens(&self, user_id: i64) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn set_password_hash(&self, user_id: i64, hash: Option<&str>) -> $crate::Result<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(hash)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn password_hash(&self, user_id: i64) -> $crate::Result<Option<String>> {
                let hash: Option<Option<String>> =
                    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(hash.flatten())
            }

            async fn count_login_failures(
                &self,
                username: &str,
                client_ip: &str,
                since: $crate::Timestamp,
            ) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM login_failures \
                     WHERE username = $1 AND client_ip = $2 AND failed_at >= $3",
                )
                .bind(username)
                .bind(client_ip)
                .bind(since.timestamp_micros())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn record_login_failure(
                &self,
                username: &str,
                client_ip: &str,
                forget_before: $crate::Timestamp,
            ) -> $crate::Result<()> {
                sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
                    .bind(forget_before.timestamp_micros())
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO login_failures (username, client_ip, failed_at) VALUES ($1, $2, $3)",
                )
                .bind(username)
                .bind(client_ip)
                .bind($crate::now().timestamp_micros())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn clear_login_failures(&self, username: &str, client_ip: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM login_failures WHERE username = $1 AND client_ip = $2")
                    .bind(username)
                    .bind(client_ip)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_or_create_session(&self, user_id: i64) -> $crate::Result<$crate::ChatSession> {
                // The unique index on user_id makes a concurrent second insert a no-op.
                sqlx::query(
                    "INSERT INTO chat_sessions (uuid, user_id, created, modified) \
                     VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO NOTHING",
                )
                .bind($crate::rows::uuid_text(uuid::Uuid::new_v4()))
                .bind(user_id)
                .bind($crate::now().timestamp_micros())
                .execute(&self.pool)
                .await?;
                let sql = format!("{} WHERE s.user_id = $1", $crate::sql::SESSION_SELECT);
                sqlx::query_as::<_, $crate::rows::SessionRow>(sqlx::AssertSqlSafe(sql))
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await?
                    .into_model()
            }

            async fn count_sessions(&self, scope: $crate::Scope) -> $crate::Result<i64> {
                let query = match scope.owner() {
                    None => sqlx::query_scalar("SELECT COUNT(*) FROM chat_sessions"),
                    Some(owner) => {
                        sqlx::query_scalar("SELECT COUNT(*) FROM chat_sessions WHERE user_id = $1")
                            .bind(owner)
                    }
                };
                Ok(query.fetch_one(&self.pool).await?)
            }

            async fn list_sessions(
                &self,
                scope: $crate::Scope,
                window: $crate::Window,
            ) -> $crate::Result<Vec<$crate::ChatSession>> {
                let mut qb = sqlx::QueryBuilder::new($crate::sql::SESSION_SELECT);
                if let Some(owner) = scope.owner() {
                    qb.push(" WHERE s.user_id = ").push_bind(owner);
                }
                // Literal integers: see `sql::select_threads` on LIMIT parameters.
                qb.push(format_args!(
                    " ORDER BY s.created DESC, s.id DESC LIMIT {} OFFSET {}",
                    window.limit, window.offset
                ));
                let rows = qb
                    .build_query_as::<$crate::rows::SessionRow>()
                    .fetch_all(&self.pool)
                    .await?;
                $crate::rows::convert_all(rows, $crate::rows::SessionRow::into_model)
            }

            async fn find_session(
                &self,
                scope: $crate::Scope,
                uuid: uuid::Uuid,
            ) -> $crate::Result<Option<$crate::ChatSession>> {
                let mut qb = sqlx::QueryBuilder::new($crate::sql::SESSION_SELECT);
                qb.push(" WHERE s.uuid = ").push_bind($crate::rows::uuid_text(uuid));
                if let Some(owner) = scope.owner() {
                    qb.push(" AND s.user_id = ").push_bind(owner);
                }
                qb.build_query_as::<$crate::rows::SessionRow>()
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::rows::SessionRow::into_model)
                    .transpose()
            }

            async fn create_thread(&self, session_id: i64, name: &str) -> $crate::Result<$crate::Thread> {
                let uuid = uuid::Uuid::new_v4();
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO threads (uuid, session_id, name, created, modified) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind($crate::rows::uuid_text(uuid))
                .bind(session_id)
                .bind(name)
                .bind($crate::now().timestamp_micros())
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE chat_sessions SET thread_count = thread_count + 1 WHERE id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let all = $crate::ThreadFilter::new($crate::Scope::All);
                self.find_thread(&all, uuid)
                    .await?
                    .ok_or($crate::StoreError::NotFound("thread"))
            }

            async fn count_threads(&self, filter: &$crate::ThreadFilter) -> $crate::Result<i64> {
                Ok($crate::sql::count_threads($dialect, filter)
                    .build_query_scalar()
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_threads(
                &self,
                filter: &$crate::ThreadFilter,
                window: $crate::Window,
            ) -> $crate::Result<$crate::Listing<$crate::Thread>> {
                let rows = $crate::sql::select_threads(
                    $dialect,
                    filter,
                    None,
                    window,
                    $crate::sql::WithTotal::Yes,
                )
                .build_query_as::<$crate::rows::ThreadPageRow>()
                .fetch_all(&self.pool)
                .await?;
                // An empty page carries no total column to read it from.
                let total = match rows.first() {
                    Some(row) => row.total,
                    None => self.count_threads(filter).await?,
                };
                let items = $crate::rows::convert_all(rows, |row| row.thread.into_model())?;
                Ok($crate::Listing { total, items })
            }

            async fn find_thread(
                &self,
                filter: &$crate::ThreadFilter,
                uuid: uuid::Uuid,
            ) -> $crate::Result<Option<$crate::Thread>> {
                let first = $crate::Window { limit: 1, offset: 0 };
                $crate::sql::select_threads($dialect, filter, Some(uuid), first, $crate::sql::WithTotal::No)
                    .build_query_as::<$crate::rows::ThreadRow>()
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::rows::ThreadRow::into_model)
                    .transpose()
            }

            async fn set_thread_archived(
                &self,
                filter: &$crate::ThreadFilter,
                uuid: uuid::Uuid,
                archived: bool,
            ) -> $crate::Result<bool> {
                let Some(thread) = self.find_thread(filter, uuid).await? else {
                    return Ok(false);
                };
                let done = sqlx::query("UPDATE threads SET is_archived = $1, modified = $2 WHERE id = $3")
                    .bind(archived)
                    .bind($crate::now().timestamp_micros())
                    .bind(thread.id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_thread_name(&self, thread_id: i64, name: &str) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE threads SET name = $1 WHERE id = $2")
                    .bind(name)
                    .bind(thread_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn acquire_limited_lease(
                &self,
                thread_id: i64,
                lease: uuid::Uuid,
                ttl: std::time::Duration,
                max_per_user: Option<u32>,
            ) -> $crate::Result<$crate::LeaseGrant> {
                let mut tx = self.begin_write().await?;
                if let Some(limit) = max_per_user {
                    // The owner's session row is the per-user lock (SQLite's
                    // write transaction already serialises everything).
                    let owner: Option<i64> = sqlx::query_scalar(concat!(
                        "SELECT s.id FROM chat_sessions s JOIN threads t ON t.session_id = s.id \
                         WHERE t.id = $1",
                        $row_lock
                    ))
                    .bind(thread_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(session_id) = owner else {
                        return Err($crate::StoreError::NotFound("thread"));
                    };
                    // Expiry by the database's clock: a dead node's leases
                    // stop counting when they expire.
                    let running: i64 = sqlx::query_scalar(concat!(
                        "SELECT COUNT(*) FROM threads WHERE session_id = $1 AND id <> $2 \
                         AND generation_lease IS NOT NULL AND generation_lease_expires > ",
                        $db_now
                    ))
                    .bind(session_id)
                    .bind(thread_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if running >= i64::from(limit) {
                        return Ok($crate::LeaseGrant::UserBusy);
                    }
                }
                // Expiry is judged by the database's clock, so nodes whose
                // clocks disagree still agree on who holds a thread.
                let done = sqlx::query(concat!(
                    "UPDATE threads SET generation_lease = $1, generation_lease_expires = ",
                    $db_now,
                    " + $2, cancel_requested_at = NULL WHERE id = $3 \
                     AND (generation_lease IS NULL OR generation_lease_expires <= ",
                    $db_now,
                    ")"
                ))
                .bind($crate::rows::uuid_text(lease))
                .bind($crate::sql::micros(ttl))
                .bind(thread_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(if done.rows_affected() == 1 {
                    $crate::LeaseGrant::Granted
                } else {
                    $crate::LeaseGrant::ThreadBusy
                })
            }

            async fn renew_generation_lease(
                &self,
                thread_id: i64,
                lease: uuid::Uuid,
                ttl: std::time::Duration,
            ) -> $crate::Result<bool> {
                // An expired lease nobody took over is still its holder's:
                // after a database outage longer than the ttl, the answer
                // goes on rather than being dropped for no one's benefit.
                let done = sqlx::query(concat!(
                    "UPDATE threads SET generation_lease_expires = ",
                    $db_now,
                    " + $1 WHERE id = $2 AND generation_lease = $3"
                ))
                .bind($crate::sql::micros(ttl))
                .bind(thread_id)
                .bind($crate::rows::uuid_text(lease))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_generation_lease(
                &self,
                thread_id: i64,
                lease: uuid::Uuid,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE threads SET generation_lease = NULL, generation_lease_expires = NULL \
                     WHERE id = $1 AND generation_lease = $2",
                )
                .bind(thread_id)
                .bind($crate::rows::uuid_text(lease))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn request_generation_cancel(&self, thread_id: i64) -> $crate::Result<bool> {
                let done = sqlx::query(concat!(
                    "UPDATE threads SET cancel_requested_at = ",
                    $db_now,
                    " WHERE id = $1 AND generation_lease IS NOT NULL AND generation_lease_expires > ",
                    $db_now
                ))
                .bind(thread_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_requests(&self, thread_ids: &[i64]) -> $crate::Result<Vec<i64>> {
                if thread_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT id FROM threads WHERE cancel_requested_at IS NOT NULL AND id IN (",
                );
                let mut ids = qb.separated(", ");
                for id in thread_ids {
                    ids.push_bind(*id);
                }
                qb.push(")");
                Ok(qb.build_query_scalar().fetch_all(&self.pool).await?)
            }

            async fn insert_message(
                &self,
                thread_id: i64,
                message: &$crate::NewMessage,
            ) -> $crate::Result<$crate::Message> {
                let mut tx = self.begin_write().await?;
                let id = Self::insert_row(&mut tx, thread_id, message).await?;
                tx.commit().await?;
                self.message_by_id(id).await
            }

            async fn append_user_message(
                &self,
                thread_id: i64,
                content: &str,
            ) -> $crate::Result<$crate::Message> {
                let mut tx = self.begin_write().await?;
                Self::lock_thread(&mut tx, thread_id).await?;
                let sequence_index = Self::next_index(&mut tx, thread_id).await?;
                let new = $crate::NewMessage {
                    role: $crate::Role::User,
                    content: content.to_owned(),
                    sequence_index,
                    replaces: None,
                };
                let id = Self::insert_row(&mut tx, thread_id, &new).await?;
                tx.commit().await?;
                self.message_by_id(id).await
            }

            async fn edit_user_message(
                &self,
                thread_id: i64,
                target: uuid::Uuid,
                content: &str,
            ) -> $crate::Result<$crate::Message> {
                let mut tx = self.begin_write().await?;
                Self::lock_thread(&mut tx, thread_id).await?;
                let found: Option<(i64, String, i64)> = sqlx::query_as(
                    "SELECT id, role, sequence_index FROM messages \
                     WHERE thread_id = $1 AND uuid = $2",
                )
                .bind(thread_id)
                .bind($crate::rows::uuid_text(target))
                .fetch_optional(&mut *tx)
                .await?;
                let (target_id, role, sequence_index) =
                    found.ok_or($crate::StoreError::NotFound("message"))?;
                if role != $crate::Role::User.as_str() {
                    return Err($crate::StoreError::EditRejected(
                        $crate::EditRejection::NotAUserMessage,
                    ));
                }
                let last = Self::last_active(&mut tx, thread_id, $crate::Role::User).await?;
                if last.map(|(id, _)| id) != Some(target_id) {
                    return Err($crate::StoreError::EditRejected(
                        $crate::EditRejection::NotTheLastUserMessage,
                    ));
                }
                let new = $crate::NewMessage {
                    role: $crate::Role::User,
                    content: content.to_owned(),
                    sequence_index,
                    replaces: Some(target_id),
                };
                let id = Self::insert_row(&mut tx, thread_id, &new).await?;
                tx.commit().await?;
                self.message_by_id(id).await
            }

            async fn append_answer(
                &self,
                thread_id: i64,
                to: &$crate::AnswerTo,
                content: &str,
            ) -> $crate::Result<$crate::Answer> {
                let mut tx = self.begin_write().await?;
                Self::lock_thread(&mut tx, thread_id).await?;
                let (user_id, assistant_id) =
                    Self::place_answer(&mut tx, thread_id, to, content, None).await?;
                Self::touch_thread(&mut tx, thread_id).await?;
                tx.commit().await?;
                self.answer_by_ids(user_id, assistant_id).await
            }

            async fn begin_answer(
                &self,
                thread_id: i64,
                to: &$crate::AnswerTo,
                lease: uuid::Uuid,
                reserved_tokens: i64,
            ) -> $crate::Result<$crate::Answer> {
                let lease = $crate::rows::uuid_text(lease);
                let mut tx = self.begin_write().await?;
                Self::lock_thread(&mut tx, thread_id).await?;
                if !Self::holds_lease(&mut tx, thread_id, &lease).await? {
                    return Err($crate::StoreError::LeaseLost);
                }
                // Only the newest answer of a thread keeps its transcript.
                sqlx::query(
                    "UPDATE messages SET stream_transcript = NULL \
                     WHERE thread_id = $1 AND stream_transcript IS NOT NULL",
                )
                .bind(thread_id)
                .execute(&mut *tx)
                .await?;
                let (user_id, assistant_id) =
                    Self::place_answer(&mut tx, thread_id, to, "", Some(&lease)).await?;
                if reserved_tokens != 0 {
                    sqlx::query("UPDATE messages SET reserved_tokens = $1 WHERE id = $2")
                        .bind(reserved_tokens)
                        .bind(assistant_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::touch_thread(&mut tx, thread_id).await?;
                tx.commit().await?;
                self.answer_by_ids(user_id, assistant_id).await
            }

            async fn generating_answer(&self, thread_id: i64) -> $crate::Result<Option<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM messages \
                     WHERE thread_id = $1 AND generating_lease IS NOT NULL \
                     ORDER BY id DESC LIMIT 1",
                )
                .bind(thread_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn answer_transcript(
                &self,
                message_id: i64,
                from: usize,
                limit: usize,
            ) -> $crate::Result<Option<$crate::AnswerTranscript>> {
                // SUBSTR counts characters, which are bytes here: the
                // transcript's lines are ASCII.
                let row: Option<(Option<String>, Option<i64>, bool)> = sqlx::query_as(
                    "SELECT SUBSTR(stream_transcript, CAST($2 AS INTEGER), CAST($3 AS INTEGER)), \
                     CAST(LENGTH(stream_transcript) AS BIGINT), generating_lease IS NOT NULL \
                     FROM messages WHERE id = $1",
                )
                .bind(message_id)
                .bind(i64::try_from(from).unwrap_or(i64::MAX - 1).saturating_add(1))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(part, length, is_generating)| $crate::AnswerTranscript {
                    message_id,
                    part: part.unwrap_or_default(),
                    length: length.and_then(|l| usize::try_from(l).ok()).unwrap_or(0),
                    is_generating,
                }))
            }

            async fn save_answer(
                &self,
                message_id: i64,
                lease: uuid::Uuid,
                progress: &$crate::AnswerProgress<'_>,
            ) -> $crate::Result<$crate::AnswerSaved> {
                let lease = $crate::rows::uuid_text(lease);
                // The lease is checked in the statement that writes, so a
                // generation that lost its thread can never overwrite the
                // answer of the one that took it over. Expiry is not
                // checked: a lease that lapsed while the database was
                // unreachable is still exclusively ours until another
                // generation takes the thread (which replaces it). The
                // thread row is read with a share lock (PostgreSQL), so a
                // takeover waits for this write.
                let update = concat!(
                    "WITH held AS (SELECT t.id FROM threads t \
                     WHERE t.id = (SELECT thread_id FROM messages WHERE id = $5) \
                     AND t.generation_lease = $6",
                    $share_lock,
                    ") UPDATE messages SET content = $1, output_tokens = $2, \
                     stream_transcript = $3, \
                     generating_lease = CASE WHEN $4 THEN NULL ELSE generating_lease END, \
                     reserved_tokens = CASE WHEN $4 THEN 0 ELSE reserved_tokens END \
                     WHERE id = $5 AND EXISTS (SELECT 1 FROM held)"
                );
                let query = || {
                    sqlx::query(update)
                        .bind(progress.content)
                        .bind(progress.output_tokens.max(0))
                        .bind(progress.transcript)
                        .bind(progress.done)
                        .bind(message_id)
                        .bind(&lease)
                };
                if !progress.done {
                    let done = query().execute(&self.pool).await?;
                    return Ok(if done.rows_affected() == 1 {
                        $crate::AnswerSaved::Written {
                            counted: 0,
                            reserved: 0,
                        }
                    } else {
                        $crate::AnswerSaved::LeaseLost
                    });
                }
                let mut tx = self.begin_write().await?;
                // A recovery sweep may have marked the answer interrupted
                // (and counted its tokens) while the database kept this
                // node from renewing: say how many, so they are not
                // counted twice.
                // The reservation still on the row is taken off by this
                // save and settled by the caller.
                let swept: Option<(bool, i64, i64)> = sqlx::query_as(concat!(
                    "SELECT generating_lease IS NULL, output_tokens, reserved_tokens \
                     FROM messages WHERE id = $1",
                    $row_lock
                ))
                .bind(message_id)
                .fetch_optional(&mut *tx)
                .await?;
                let (counted, reserved) = match swept {
                    Some((true, tokens, reserved)) => (tokens, reserved),
                    Some((false, _, reserved)) => (0, reserved),
                    None => (0, 0),
                };
                let done = query().execute(&mut *tx).await?;
                if done.rows_affected() != 1 {
                    return Ok($crate::AnswerSaved::LeaseLost);
                }
                sqlx::query(
                    "UPDATE threads SET modified = $1 WHERE id = (SELECT thread_id FROM messages WHERE id = $2)",
                )
                .bind($crate::now().timestamp_micros())
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok($crate::AnswerSaved::Written { counted, reserved })
            }

            async fn recover_interrupted_answers(
                &self,
                thread_id: Option<i64>,
                expired_for: std::time::Duration,
            ) -> $crate::Result<u64> {
                // Answers still marked as generating whose lease no longer
                // holds their thread: their node died, or could not save
                // the end. Each is claimed with a conditional update, so
                // with several nodes sweeping its tokens are counted once.
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT m.id, s.user_id, m.output_tokens, m.reserved_tokens FROM messages m \
                     JOIN threads t ON t.id = m.thread_id JOIN chat_sessions s ON s.id = t.session_id \
                     WHERE m.generating_lease IS NOT NULL AND (t.generation_lease IS NULL \
                     OR t.generation_lease <> m.generating_lease OR t.generation_lease_expires + ",
                );
                qb.push_bind($crate::sql::micros(expired_for));
                qb.push(concat!(" <= ", $db_now, ")"));
                if let Some(thread_id) = thread_id {
                    qb.push(" AND m.thread_id = ").push_bind(thread_id);
                }
                let orphans: Vec<(i64, i64, i64, i64)> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                let mut recovered = 0;
                for (message_id, user_id, tokens, reserved) in orphans {
                    // The claim takes the reservation off the row with the
                    // generating mark, so it is settled once.
                    let claimed = sqlx::query(
                        "UPDATE messages SET generating_lease = NULL, reserved_tokens = 0 \
                         WHERE id = $1 AND generating_lease IS NOT NULL",
                    )
                    .bind(message_id)
                    .execute(&self.pool)
                    .await?;
                    if claimed.rows_affected() == 1 {
                        recovered += 1;
                        let settled = tokens.max(0) - reserved.max(0);
                        if settled != 0 {
                            self.add_token_usage(user_id, settled).await?;
                        }
                    }
                }
                Ok(recovered)
            }

            async fn record_detection(
                &self,
                message_id: i64,
                detection: &$crate::Detection,
            ) -> $crate::Result<()> {
                let encode = |list: &Vec<String>| {
                    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
                };
                let mut tx = self.begin_write().await?;
                let thread_id: Option<i64> =
                    sqlx::query_scalar("SELECT thread_id FROM messages WHERE id = $1")
                        .bind(message_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let thread_id = thread_id.ok_or($crate::StoreError::NotFound("message"))?;
                // Lock the thread before touching its messages, the order every
                // writer of a thread follows.
                let flags: String = sqlx::query_scalar(concat!(
                    "SELECT flags FROM threads WHERE id = $1",
                    $row_lock
                ))
                .bind(thread_id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE messages SET is_flagged = $1, severity = $2, injection_categories = $3, \
                     pii_categories = $4, action_taken = $5 WHERE id = $6",
                )
                .bind(detection.is_flagged)
                .bind(detection.severity.as_str())
                .bind(encode(&detection.injection_categories))
                .bind(encode(&detection.pii_categories))
                .bind(detection.action_taken.as_str())
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
                if detection.is_flagged {
                    let severities: Vec<String> = sqlx::query_scalar(
                        "SELECT severity FROM messages WHERE thread_id = $1 AND is_flagged = TRUE",
                    )
                    .bind(thread_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let (flags, is_flagged, max) = $crate::sql::summarise_flags(&flags, &severities)?;
                    sqlx::query(
                        "UPDATE threads SET flags = $1, is_flagged = $2, max_severity = $3, \
                         modified = $4 WHERE id = $5",
                    )
                    .bind(flags)
                    .bind(is_flagged)
                    .bind(max.as_str())
                    .bind($crate::now().timestamp_micros())
                    .bind(thread_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_messages(
                &self,
                filter: &$crate::MessageFilter,
            ) -> $crate::Result<Vec<$crate::Message>> {
                let rows = $crate::sql::select_messages(filter)
                    .build_query_as::<$crate::rows::MessageRow>()
                    .fetch_all(&self.pool)
                    .await?;
                $crate::rows::convert_all(rows, $crate::rows::MessageRow::into_model)
            }

            async fn token_quota(&self, user_id: i64) -> $crate::Result<$crate::TokenQuota> {
                let mut tx = self.begin_write().await?;
                let quota = Self::locked_quota(&mut tx, user_id).await?;
                tx.commit().await?;
                Ok(quota)
            }

            async fn set_token_limits(
                &self,
                user_id: i64,
                limits: $crate::QuotaLimits,
            ) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                Self::locked_quota(&mut tx, user_id).await?;
                sqlx::query(
                    "UPDATE token_quotas SET daily_limit = $1, weekly_limit = $2, \
                     monthly_limit = $3 WHERE user_id = $4",
                )
                .bind(limits.0[0])
                .bind(limits.0[1])
                .bind(limits.0[2])
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_token_usage(
                &self,
                user_id: i64,
                tokens: i64,
            ) -> $crate::Result<$crate::TokenQuota> {
                let mut tx = self.begin_write().await?;
                let mut quota = Self::locked_quota(&mut tx, user_id).await?;
                for used in quota.usage.iter_mut() {
                    *used = used.saturating_add(tokens).max(0);
                }
                Self::write_quota_usage(&mut tx, user_id, &quota).await?;
                tx.commit().await?;
                Ok(quota)
            }

            async fn reserve_tokens(
                &self,
                user_id: i64,
                defaults: $crate::QuotaDefaults,
                wanted: i64,
            ) -> $crate::Result<$crate::Reservation> {
                let mut tx = self.begin_write().await?;
                let mut quota = Self::locked_quota(&mut tx, user_id).await?;
                let reservation = quota.reserve(defaults, wanted);
                if let $crate::Reservation::Granted { tokens, .. } = reservation
                    && tokens > 0
                {
                    Self::write_quota_usage(&mut tx, user_id, &quota).await?;
                }
                tx.commit().await?;
                Ok(reservation)
            }

            async fn record_message_usage(
                &self,
                message_id: i64,
                input_tokens: i64,
                output_tokens: i64,
            ) -> $crate::Result<()> {
                let done = sqlx::query(
                    "UPDATE messages SET input_tokens = $1, output_tokens = $2 WHERE id = $3",
                )
                .bind(input_tokens.max(0))
                .bind(output_tokens.max(0))
                .bind(message_id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound("message"));
                }
                Ok(())
            }

            async fn record_audit_event(
                &self,
                event: &$crate::NewAuditEvent,
            ) -> $crate::Result<$crate::AuditEvent> {
                let sql = format!(
                    "INSERT INTO audit_events (uuid, event_type, message, actor_id, target_id, \
                     context, created) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {}",
                    $crate::sql::AUDIT_COLUMNS
                );
                sqlx::query_as::<_, $crate::rows::AuditRow>(sqlx::AssertSqlSafe(sql))
                    .bind($crate::rows::uuid_text(uuid::Uuid::new_v4()))
                    .bind(&event.event_type)
                    .bind(&event.message)
                    .bind(event.actor_id)
                    .bind(event.target_id)
                    .bind(serde_json::Value::Object(event.context.clone()).to_string())
                    .bind($crate::now().timestamp_micros())
                    .fetch_one(&self.pool)
                    .await?
                    .into_model()
            }

            async fn list_audit_events(
                &self,
                target_id: Option<i64>,
            ) -> $crate::Result<Vec<$crate::AuditEvent>> {
                let mut qb = sqlx::QueryBuilder::new(format!(
                    "SELECT {} FROM audit_events",
                    $crate::sql::AUDIT_COLUMNS
                ));
                if let Some(target) = target_id {
                    qb.push(" WHERE target_id = ").push_bind(target);
                }
                qb.push(" ORDER BY created ASC, id ASC");
                let rows = qb
                    .build_query_as::<$crate::rows::AuditRow>()
                    .fetch_all(&self.pool)
                    .await?;
                $crate::rows::convert_all(rows, $crate::rows::AuditRow::into_model)
            }
        }
    };
}

pub(crate) use sql_store;
