//! Where a plugin's request goes: the service's base URL joined with the plugin's path, which
//! can never leave it. Refused: anything but an absolute path (`/…`), a scheme or a host
//! (`http://…`, `//evil.example`), dot segments (`..`, `.`, also percent-encoded), backslashes,
//! encoded slashes, control characters, and fragments.

use reqwest::Url;

/// The URL for `path` under `base`, or why the path is refused.
pub fn resolve(base: &Url, path: &str) -> Result<Url, String> {
    let refuse = |why: &str| Err(format!("the path `{}` {why}", path.chars().take(200).collect::<String>()));
    if !path.starts_with('/') {
        return refuse("must start with `/` (it is relative to the service's base URL)");
    }
    if path.starts_with("//") || path.contains("://") {
        return refuse("must not name a scheme or a host");
    }
    if path.len() > 4096 {
        return refuse("is longer than 4096 bytes");
    }
    if path.chars().any(|c| c.is_control() || c == '\\' || c == '#' || c == ' ') {
        return refuse("must not contain control characters, spaces, `\\` or `#`");
    }
    let (route, query) = match path.split_once('?') {
        Some((route, query)) => (route, Some(query)),
        None => (path, None),
    };
    let lowered = route.to_ascii_lowercase();
    if lowered.contains("%2f") || lowered.contains("%5c") || lowered.contains("%2e") || lowered.contains("%00") {
        return refuse("must not contain encoded slashes, dots or NULs");
    }
    // Plain ASCII path characters only: no `;` (matrix parameters, `/..;/` tricks), no
    // non-ASCII look-alikes that a server might normalise into `.` or `/`.
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/%:@!$&'()*+,=".contains(c);
    if !route.chars().all(allowed) {
        return refuse("may only hold ASCII letters, digits and `-._~/%:@!$&'()*+,=`");
    }
    if query.is_some_and(|q| !q.chars().all(|c| allowed(c) || c == '?' || c == ';')) {
        return refuse("has a query with characters that must be percent-encoded");
    }
    if route.split('/').any(|segment| segment == ".." || segment == ".") {
        return refuse("must not contain `.` or `..` segments");
    }
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), route);
    url.set_path(&joined);
    url.set_query(query);
    if url.scheme() != base.scheme() || url.host() != base.host() || url.port() != base.port() {
        return refuse("leaves the service's base URL");
    }
    if !url.path().starts_with(base.path().trim_end_matches('/')) {
        return refuse("leaves the service's base path");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:9000/api/v2/").unwrap()
    }

    #[test]
    fn paths_join_under_the_base() {
        assert_eq!(
            resolve(&base(), "/rates?from=GB&to=FR").unwrap().as_str(),
            "http://127.0.0.1:9000/api/v2/rates?from=GB&to=FR"
        );
        assert_eq!(resolve(&base(), "/").unwrap().as_str(), "http://127.0.0.1:9000/api/v2/");
    }

    #[test]
    fn escapes_are_refused() {
        for path in [
            "../../admin",
            "/../../admin",
            "/rates/../../admin",
            "/%2e%2e/admin",
            "/%2E%2e%2fadmin",
            "//evil.example/x",
            "http://evil.example/x",
            "/x?next=http://evil.example",
            "https://127.0.0.1:9000/api/v2/x",
            "/a\\..\\b",
            "/a#frag",
            "rates",
            "/./x",
            "/..;/admin",
            "/rates/\u{ff0e}\u{ff0e}/admin",
            "/a;b",
        ] {
            assert!(resolve(&base(), path).is_err(), "{path} must be refused");
        }
    }
}
