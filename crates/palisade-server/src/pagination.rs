//! The reference's `LinkHeaderPagination`: `page` / `page_size` in, a plain
//! JSON array out, with `X-Result-Count` and a `Link` header (first, prev,
//! next, last) of absolute URLs built the way DRF builds them.

use axum::http::header::{HOST, LINK};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use palisade_store::Window;

use crate::error::ApiError;
use crate::params::QueryParams;

pub const DEFAULT_PAGE_SIZE: i64 = 10;
pub const MAX_PAGE_SIZE: i64 = 300;

/// The page a request asked for, resolved against the result count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i64,
    pub last: i64,
    pub size: i64,
    pub total: i64,
}

impl Page {
    pub fn window(&self) -> Window {
        Window {
            limit: self.size,
            offset: (self.number - 1) * self.size,
        }
    }
}

/// DRF's `_positive_int(strict=True)`: zero, negatives and junk fall back to
/// the default; large values are clamped, even those too large for an `i64`
/// (Python's `int` has no such limit).
fn page_size(params: &QueryParams) -> i64 {
    let Some(text) = params.last("page_size").map(str::trim) else {
        return DEFAULT_PAGE_SIZE;
    };
    let digits = text.strip_prefix('+').unwrap_or(text);
    let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_PAGE_SIZE),
        // An integer too large for an `i64` is far above the maximum.
        Err(_) if is_integer => MAX_PAGE_SIZE,
        _ => DEFAULT_PAGE_SIZE,
    }
}

/// The `page` and `page_size` a request asked for, before the total is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// `None` for `page=last`.
    pub number: Option<i64>,
    pub size: i64,
}

fn invalid_page() -> ApiError {
    ApiError::NotFound("Invalid page.")
}

impl PageRequest {
    /// Reads `page` (1-based, or `last`) and `page_size`; a `page` that cannot
    /// be a page number is 404 `Invalid page.`.
    pub fn parse(params: &QueryParams) -> Result<PageRequest, ApiError> {
        let number = match params.last("page").map(str::trim) {
            None | Some("") => Some(1),
            Some("last") => None,
            Some(text) => {
                let number = text
                    .strip_prefix('+')
                    .unwrap_or(text)
                    .parse::<i64>()
                    .map_err(|_| invalid_page())?;
                if number < 1 {
                    return Err(invalid_page());
                }
                Some(number)
            }
        };
        Ok(PageRequest {
            number,
            size: page_size(params),
        })
    }

    /// The rows of page `number`.
    pub fn window(&self, number: i64) -> Window {
        Window {
            limit: self.size,
            offset: number.saturating_sub(1).saturating_mul(self.size),
        }
    }

    /// The requested page among `total` rows; 404 `Invalid page.` past the end.
    pub fn resolve(&self, total: i64) -> Result<Page, ApiError> {
        let last = ((total + self.size - 1) / self.size).max(1);
        let number = self.number.unwrap_or(last);
        if number > last {
            return Err(invalid_page());
        }
        Ok(Page {
            number,
            last,
            size: self.size,
            total,
        })
    }
}

/// Resolves the request's page against a known total.
pub fn resolve(params: &QueryParams, total: i64) -> Result<Page, ApiError> {
    PageRequest::parse(params)?.resolve(total)
}

/// Python's `quote_plus`: unreserved characters stay, space becomes `+`.
fn quote_plus(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// The request URL with `page` set to `number` (removed for `None`), its
/// parameters sorted by key as DRF's `replace_query_param` does.
fn page_url(base: &str, params: &QueryParams, number: Option<i64>) -> String {
    let mut pairs: Vec<(&str, String)> = params
        .0
        .iter()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if let Some(number) = number {
        pairs.push(("page", number.to_string()));
    }
    // Stable: repeated keys keep their order.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut url = base.to_owned();
    for (i, (key, value)) in pairs.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        quote_plus(key, &mut url);
        url.push('=');
        quote_plus(value, &mut url);
    }
    url
}

/// `X-Result-Count` and `Link` for a page of results.
pub fn headers(
    request_headers: &HeaderMap,
    uri: &Uri,
    params: &QueryParams,
    page: &Page,
) -> HeaderMap {
    let host = request_headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match request_headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let base = format!("{scheme}://{host}{}", uri.path());
    // Page 1 is always written without `page`, as DRF does.
    let link = |number: i64| page_url(&base, params, (number > 1).then_some(number));
    let mut links = vec![format!(
        "<{}>; rel=\"first\"",
        page_url(&base, params, None)
    )];
    if page.number > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link(page.number - 1)));
    }
    if page.number < page.last {
        links.push(format!("<{}>; rel=\"next\"", link(page.number + 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", link(page.last)));

    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("x-result-count"),
        HeaderValue::from(page.total),
    );
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(LINK, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> QueryParams {
        QueryParams(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    #[test]
    fn page_numbers() {
        assert_eq!(resolve(&params(""), 0).unwrap().number, 1);
        assert_eq!(resolve(&params("page=last"), 25).unwrap().number, 3);
        assert_eq!(
            resolve(&params("page=2&page_size=20"), 25)
                .unwrap()
                .window()
                .offset,
            20
        );
        for bad in [
            "page=0",
            "page=4",
            "page=-1",
            "page=x",
            "page=99999999999999999999",
        ] {
            assert!(resolve(&params(bad), 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes() {
        for (query, size) in [
            ("page_size=0", 10),
            ("page_size=-5", 10),
            ("page_size=abc", 10),
        ] {
            assert_eq!(page_size(&params(query)), size, "{query}");
        }
        assert_eq!(page_size(&params("page_size=1000")), 300);
        assert_eq!(page_size(&params("page_size=99999999999999999999")), 300);
        assert_eq!(page_size(&params("page_size=-99999999999999999999")), 10);
        assert_eq!(page_size(&params("page_size=25")), 25);
    }

    #[test]
    fn urls_sort_and_quote_like_drf() {
        let p = params("query=a b%2Fc&page=2&field=uuid&field=name");
        assert_eq!(
            page_url("http://h/api/x/", &p, Some(3)),
            "http://h/api/x/?field=uuid&field=name&page=3&query=a+b%2Fc"
        );
        assert_eq!(page_url("http://h/", &params(""), None), "http://h/");
    }
}
