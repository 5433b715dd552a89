//! The reference's `LinkHeaderPagination` on threads and sessions: plain
//! arrays, `X-Result-Count`, `Link` (first, prev, next, last), `page_size`
//! default and clamp, and `Invalid page.` for pages that do not exist.

mod common;

mod tests {
    use serde_json::json;

    use super::common::{Account, TestServer, assert_body, header, names};

    /// `count` threads named `t01`, `t02`, … (newest listed first).
    async fn seed(server: &TestServer, who: &Account, count: usize) {
        for i in 1..=count {
            server.thread(who, &format!("t{i:02}")).await;
        }
    }

    fn expected_names(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
        range.rev().map(|i| format!("t{i:02}")).collect()
    }

    /// The `Link` header value built from `(query, rel)` pairs.
    fn link(server: &TestServer, path: &str, entries: &[(&str, &str)]) -> String {
        entries
            .iter()
            .map(|(query, rel)| format!("<{}{query}>; rel=\"{rel}\"", server.url(path)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// GET as `who`; returns (X-Result-Count, Link, names).
    async fn page(server: &TestServer, who: &Account, path: &str) -> (String, String, Vec<String>) {
        let response = server.get(who, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let count = header(&response, "x-result-count").unwrap().to_owned();
        let link = header(&response, "link").unwrap().to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        (count, link, names(&body, "name"))
    }

    pub async fn pages_and_link_headers(server: TestServer) {
        let alice = server.user("alice").await;
        seed(&server, &alice, 25).await;
        let path = "/api/chat-threads/";

        let (count, links, items) = page(&server, &alice, path).await;
        assert_eq!(count, "25");
        assert_eq!(items, expected_names(16..=25));
        assert_eq!(
            links,
            link(
                &server,
                path,
                &[("", "first"), ("?page=2", "next"), ("?page=3", "last")]
            )
        );

        let (count, links, items) = page(&server, &alice, "/api/chat-threads/?page=2").await;
        assert_eq!(count, "25");
        assert_eq!(items, expected_names(6..=15));
        assert_eq!(
            links,
            link(
                &server,
                path,
                &[
                    ("", "first"),
                    ("", "prev"),
                    ("?page=3", "next"),
                    ("?page=3", "last")
                ]
            )
        );

        let last = link(
            &server,
            path,
            &[("", "first"), ("?page=2", "prev"), ("?page=3", "last")],
        );
        for query in ["?page=3", "?page=last", "?page=%203%20", "?page=1&page=3"] {
            let (count, links, items) =
                page(&server, &alice, &format!("/api/chat-threads/{query}")).await;
            assert_eq!(count, "25", "{query}");
            assert_eq!(items, expected_names(1..=5), "{query}");
            assert_eq!(links, last, "{query}");
        }

        // An empty `page` is page 1.
        let (_, _, items) = page(&server, &alice, "/api/chat-threads/?page=").await;
        assert_eq!(items, expected_names(16..=25));
    }

    pub async fn page_size_default_and_fallbacks(server: TestServer) {
        let alice = server.user("alice").await;
        seed(&server, &alice, 12).await;
        let path = "/api/chat-threads/";

        let (count, links, items) = page(&server, &alice, "/api/chat-threads/?page_size=5").await;
        assert_eq!(count, "12");
        assert_eq!(items, expected_names(8..=12));
        assert_eq!(
            links,
            link(
                &server,
                path,
                &[
                    ("?page_size=5", "first"),
                    ("?page=2&page_size=5", "next"),
                    ("?page=3&page_size=5", "last"),
                ]
            )
        );

        // Zero, negative and junk sizes fall back to 10.
        for size in ["0", "-5", "abc", "", "2.5", "-99999999999999999999"] {
            let (_, links, items) = page(
                &server,
                &alice,
                &format!("/api/chat-threads/?page_size={size}"),
            )
            .await;
            assert_eq!(items, expected_names(3..=12), "{size}");
            let last = format!("?page=2&page_size={size}>; rel=\"last\"");
            assert!(links.ends_with(&last), "{links}");
        }
        let (_, _, items) = page(&server, &alice, "/api/chat-threads/?page=2&page_size=abc").await;
        assert_eq!(items, expected_names(1..=2));
    }

    pub async fn page_size_is_clamped_to_300(server: TestServer) {
        let alice = server.user("alice").await;
        seed(&server, &alice, 301).await;
        for size in ["300", "301", "1000", "99999999999999999999"] {
            let path = format!("/api/chat-threads/?page_size={size}");
            let (count, links, items) = page(&server, &alice, &path).await;
            assert_eq!(count, "301");
            assert_eq!(items.len(), 300, "{size}");
            assert!(
                links.contains(&format!("?page=2&page_size={size}>; rel=\"last\"")),
                "{links}"
            );
            let (_, _, rest) = page(&server, &alice, &format!("{path}&page=2")).await;
            assert_eq!(rest, ["t01"]);
        }
    }

    pub async fn invalid_pages_are_404(server: TestServer) {
        let alice = server.user("alice").await;
        seed(&server, &alice, 25).await;
        for bad in [
            "0",
            "4",
            "-1",
            "abc",
            "1.5",
            "first",
            "99999999999999999999",
            "999999999999999999999999999999999999",
        ] {
            let response = server
                .get(&alice, &format!("/api/chat-threads/?page={bad}"))
                .await;
            assert_body(response, 404, json!({"detail": "Invalid page."})).await;
        }
        let response = server.get(&alice, "/api/chat-sessions/?page=2").await;
        assert_body(response, 404, json!({"detail": "Invalid page."})).await;
    }

    pub async fn empty_lists(server: TestServer) {
        let alice = server.user("alice").await;
        let path = "/api/chat-threads/";
        for query in ["", "?page=1", "?page=last"] {
            let response = server.get(&alice, &format!("{path}{query}")).await;
            assert_eq!(response.status(), 200);
            assert_eq!(header(&response, "x-result-count"), Some("0"));
            assert_eq!(
                header(&response, "link").unwrap(),
                link(&server, path, &[("", "first"), ("", "last")])
            );
            assert_eq!(
                response.json::<serde_json::Value>().await.unwrap(),
                json!([])
            );
        }
        let response = server.get(&alice, "/api/chat-threads/?page=2").await;
        assert_body(response, 404, json!({"detail": "Invalid page."})).await;
    }

    /// Other parameters survive in the links, sorted by key, quoted as
    /// Python's `urlencode` does; `page` is dropped for page 1.
    pub async fn links_keep_other_parameters(server: TestServer) {
        let alice = server.user("alice").await;
        seed(&server, &alice, 7).await;
        let path = "/api/chat-threads/";
        let (count, links, items) = page(
            &server,
            &alice,
            "/api/chat-threads/?query=t0&page=2&page_size=2&field=uuid&field=name&o=-created",
        )
        .await;
        assert_eq!(count, "7");
        assert_eq!(items, ["t05", "t04"]);
        let rest = "field=uuid&field=name&o=-created";
        assert_eq!(
            links,
            link(
                &server,
                path,
                &[
                    (&format!("?{rest}&page_size=2&query=t0"), "first"),
                    (&format!("?{rest}&page_size=2&query=t0"), "prev"),
                    (&format!("?{rest}&page=3&page_size=2&query=t0"), "next"),
                    (&format!("?{rest}&page=4&page_size=2&query=t0"), "last"),
                ]
            )
        );

        let (_, links, _) = page(&server, &alice, "/api/chat-threads/?query=t%200%2F").await;
        assert_eq!(
            links,
            link(
                &server,
                path,
                &[("?query=t+0%2F", "first"), ("?query=t+0%2F", "last")]
            )
        );
    }

    /// Sessions are paginated the same way.
    pub async fn sessions_are_paginated(server: TestServer) {
        let staff = server.staff("root").await;
        for name in ["alice", "bob", "carol"] {
            let who = server.user(name).await;
            server
                .store
                .get_or_create_session(who.user.id)
                .await
                .unwrap();
        }
        let path = "/api/chat-sessions/";
        let response = server
            .get(&staff, "/api/chat-sessions/?page_size=2&page=2")
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-result-count"), Some("3"));
        assert_eq!(
            header(&response, "link").unwrap(),
            link(
                &server,
                path,
                &[
                    ("?page_size=2", "first"),
                    ("?page_size=2", "prev"),
                    ("?page=2&page_size=2", "last"),
                ]
            )
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(names(&body, "user_username"), ["alice"]);
    }
}

http_tests!(
    pages_and_link_headers,
    page_size_default_and_fallbacks,
    page_size_is_clamped_to_300,
    invalid_pages_are_404,
    empty_lists,
    links_keep_other_parameters,
    sessions_are_paginated,
);
