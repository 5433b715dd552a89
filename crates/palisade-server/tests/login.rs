//! Password login (`POST /api-auth/password/`, Waldur's `ObtainAuthToken`),
//! logout, `GET /api/users/me/`, and the lockout after repeated failures —
//! on SQLite and PostgreSQL, the lockout also across two servers sharing one
//! database.

mod common;

mod tests {
    use palisade_store::NewUser;
    use reqwest::Method;
    use serde_json::{Value, json};

    use super::common::{Account, TestServer, assert_body, keys};

    async fn login(server: &TestServer, body: Value) -> reqwest::Response {
        server
            .client
            .post(server.url("/api-auth/password/"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A user `name` whose password is `password`.
    async fn with_password(server: &TestServer, name: &str, password: &str) -> Account {
        let account = server.user(name).await;
        palisade_server::auth::set_password(server.store.as_ref(), &account.user, password)
            .await
            .unwrap();
        account
    }

    async fn token_of(response: reqwest::Response) -> String {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(keys(&body), ["token"]);
        body["token"].as_str().unwrap().to_owned()
    }

    fn bearer(token: &str) -> Account {
        Account {
            user: palisade_store::User {
                id: 0,
                uuid: uuid::Uuid::nil(),
                username: String::new(),
                full_name: String::new(),
                email: String::new(),
                is_staff: false,
                is_support: false,
                is_active: true,
                created: palisade_store::now(),
            },
            token: token.to_owned(),
        }
    }

    pub async fn login_gives_a_working_token_that_expires(server: TestServer) {
        let alice = with_password(&server, "alice", "s3cret pass").await;
        let before = palisade_store::now();
        let token = token_of(
            login(
                &server,
                json!({"username": "alice", "password": "s3cret pass"}),
            )
            .await,
        )
        .await;
        assert_ne!(token, alice.token, "a new token per login");
        let me = server.get_json(&bearer(&token), "/api/users/me/").await;
        assert_eq!(
            keys(&me),
            [
                "uuid",
                "username",
                "full_name",
                "email",
                "is_staff",
                "is_support"
            ]
        );
        assert_eq!(me["uuid"], alice.user.uuid.simple().to_string());
        assert_eq!(me["username"], "alice");
        assert_eq!(me["full_name"], "alice Example");
        assert_eq!(me["email"], "alice@corp.test");
        assert_eq!(
            (me["is_staff"].as_bool(), me["is_support"].as_bool()),
            (Some(false), Some(false))
        );
        // The default lifetime is 24 hours.
        let (stored, _) = server
            .store
            .token_by_prefix(&token[..12])
            .await
            .unwrap()
            .unwrap();
        let expires = stored.expires.expect("login tokens expire");
        let lifetime = expires - before;
        assert!(
            (lifetime - chrono::Duration::hours(24)).num_seconds().abs() < 60,
            "{lifetime:?}"
        );
        // A second login is a second, independent token.
        let again = token_of(
            login(
                &server,
                json!({"username": "alice", "password": "s3cret pass"}),
            )
            .await,
        )
        .await;
        assert_ne!(again, token);
    }

    pub async fn form_bodies_work_and_other_types_are_415(server: TestServer) {
        with_password(&server, "alice", "pw-1").await;
        let response = server
            .client
            .post(server.url("/api-auth/password/"))
            .form(&[("username", "alice"), ("password", "pw-1")])
            .send()
            .await
            .unwrap();
        token_of(response).await;
        let response = server
            .client
            .post(server.url("/api-auth/password/"))
            .header("Content-Type", "text/plain")
            .body("alice:pw-1")
            .send()
            .await
            .unwrap();
        assert_body(
            response,
            415,
            json!({"detail": "Unsupported media type \"text/plain\" in request."}),
        )
        .await;
        let response = server
            .client
            .post(server.url("/api-auth/password/"))
            .header("Content-Type", "application/json")
            .body("{\"username\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let response = server.anonymous(Method::GET, "/api-auth/password/").await;
        assert_body(
            response,
            405,
            json!({"detail": "Method \"GET\" not allowed."}),
        )
        .await;
    }

    pub async fn wrong_credentials_and_missing_fields(server: TestServer) {
        with_password(&server, "alice", "right").await;
        let invalid = json!({"detail": "Invalid username/password."});
        let response = login(&server, json!({"username": "alice", "password": "wrong"})).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Token")
        );
        assert_body(response, 401, invalid.clone()).await;
        let response = login(&server, json!({"username": "nobody", "password": "right"})).await;
        assert_body(response, 401, invalid.clone()).await;
        // A user without a password cannot log in with any.
        server.user("bob").await;
        let response = login(&server, json!({"username": "bob", "password": ""})).await;
        assert_body(
            response,
            400,
            json!({"password": ["This field may not be blank."]}),
        )
        .await;
        let response = login(&server, json!({"username": "bob", "password": "x"})).await;
        assert_body(response, 401, invalid).await;

        let response = login(&server, json!({"username": "alice"})).await;
        assert_body(
            response,
            400,
            json!({"password": ["This field is required."]}),
        )
        .await;
        let response = login(&server, json!({})).await;
        let body = assert_body_keys(response, 400).await;
        assert_eq!(
            body,
            json!({"username": ["This field is required."], "password": ["This field is required."]})
        );
        assert_eq!(keys(&body), ["username", "password"]);
        let response = login(&server, json!({"username": null, "password": 5})).await;
        assert_body(
            response,
            400,
            json!({"username": ["This field may not be null."], "password": ["Not a valid string."]}),
        )
        .await;
    }

    /// NUL characters are refused as DRF's `CharField` does (PostgreSQL
    /// could not even look such a name up), in JSON and in forms, and no
    /// failure is counted towards a lockout.
    pub async fn nul_characters_are_400(server: TestServer) {
        with_password(&server, "alice", "right").await;
        let nul = json!({"username": ["Null characters are not allowed."]});
        let response = login(
            &server,
            json!({"username": "ali\u{0}ce", "password": "right"}),
        )
        .await;
        assert_body(response, 400, nul.clone()).await;
        let response = login(
            &server,
            json!({"username": "alice", "password": "ri\u{0}ght"}),
        )
        .await;
        assert_body(
            response,
            400,
            json!({"password": ["Null characters are not allowed."]}),
        )
        .await;
        let response = server
            .client
            .post(server.url("/api-auth/password/"))
            .form(&[("username", "\u{0}"), ("password", "right")])
            .send()
            .await
            .unwrap();
        assert_body(response, 400, nul).await;
        token_of(login(&server, json!({"username": "alice", "password": "right"})).await).await;
    }

    async fn assert_body_keys(response: reqwest::Response, status: u16) -> Value {
        assert_eq!(response.status(), status);
        response.json().await.unwrap()
    }

    pub async fn disabled_users_are_told_so(server: TestServer) {
        let carol = with_password(&server, "carol", "pw").await;
        server
            .store
            .set_user_active(carol.user.id, false)
            .await
            .unwrap();
        let response = login(&server, json!({"username": "carol", "password": "pw"})).await;
        assert_body(
            response,
            401,
            json!({"detail": "User account is disabled."}),
        )
        .await;
        // The wrong password is still just wrong: nothing about the account leaks.
        let response = login(&server, json!({"username": "carol", "password": "nope"})).await;
        assert_body(
            response,
            401,
            json!({"detail": "Invalid username/password."}),
        )
        .await;
    }

    pub async fn four_failures_lock_the_username_out(server: TestServer) {
        with_password(&server, "alice", "right").await;
        with_password(&server, "bob", "right").await;
        for _ in 0..4 {
            let response = login(&server, json!({"username": "alice", "password": "wrong"})).await;
            assert_body(
                response,
                401,
                json!({"detail": "Invalid username/password."}),
            )
            .await;
        }
        let locked = json!({"detail": "Username is locked out. Try in 10 minutes."});
        // Even the right password is refused now.
        let response = login(&server, json!({"username": "alice", "password": "right"})).await;
        assert_body(response, 401, locked.clone()).await;
        // Another username is not affected.
        token_of(login(&server, json!({"username": "bob", "password": "right"})).await).await;

        // A second node on the same database sees the same lockout.
        let other = TestServer::start(server.store.clone()).await;
        let response = login(&other, json!({"username": "alice", "password": "right"})).await;
        assert_body(response, 401, locked).await;

        // Unknown usernames lock out the same way (no enumeration).
        for _ in 0..4 {
            login(&server, json!({"username": "ghost", "password": "x"})).await;
        }
        let response = login(&server, json!({"username": "ghost", "password": "x"})).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"], "Username is locked out. Try in 10 minutes.");
    }

    pub async fn success_forgets_earlier_failures(server: TestServer) {
        with_password(&server, "alice", "right").await;
        for _ in 0..3 {
            login(&server, json!({"username": "alice", "password": "wrong"})).await;
        }
        token_of(login(&server, json!({"username": "alice", "password": "right"})).await).await;
        for _ in 0..3 {
            login(&server, json!({"username": "alice", "password": "wrong"})).await;
        }
        token_of(login(&server, json!({"username": "alice", "password": "right"})).await).await;
    }

    pub async fn logout_revokes_only_the_token_used(server: TestServer) {
        let alice = with_password(&server, "alice", "pw").await;
        let token =
            token_of(login(&server, json!({"username": "alice", "password": "pw"})).await).await;
        let session = bearer(&token);
        let response = server.post(&session, "/api-auth/logout/").await;
        assert_eq!(response.status(), 204);
        let response = server.get(&session, "/api/users/me/").await;
        assert_body(response, 401, json!({"detail": "Invalid token."})).await;
        // The API token made beside it still works.
        server.get_json(&alice, "/api/users/me/").await;
        let response = server.anonymous(Method::POST, "/api-auth/logout/").await;
        assert_body(
            response,
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        )
        .await;
    }

    pub async fn me_shows_roles(server: TestServer) {
        let admin = server
            .create_account(&NewUser {
                username: "root".into(),
                full_name: "Root Admin".into(),
                email: "root@corp.test".into(),
                is_staff: true,
                is_support: false,
            })
            .await;
        let me = server.get_json(&admin, "/api/users/me/").await;
        assert_eq!(me["is_staff"], true);
        assert_eq!(me["is_support"], false);
        let support = server.support("helpdesk").await;
        let me = server.get_json(&support, "/api/users/me/").await;
        assert_eq!(
            (me["is_staff"].as_bool(), me["is_support"].as_bool()),
            (Some(false), Some(true))
        );
        let response = server.anonymous(Method::GET, "/api/users/me/").await;
        assert_eq!(response.status(), 401);
        let response = server
            .request(Method::POST, &support, "/api/users/me/")
            .await;
        assert_body(
            response,
            405,
            json!({"detail": "Method \"POST\" not allowed."}),
        )
        .await;
    }
}

http_tests!(
    login_gives_a_working_token_that_expires,
    form_bodies_work_and_other_types_are_415,
    wrong_credentials_and_missing_fields,
    nul_characters_are_400,
    disabled_users_are_told_so,
    four_failures_lock_the_username_out,
    success_forgets_earlier_failures,
    logout_revokes_only_the_token_used,
    me_shows_roles,
);
