//! The refresh-token cookie: its exact attributes, and reading it back.

/// The cookie's name.
pub const REFRESH_COOKIE: &str = "refreshToken";

/// `Set-Cookie` for a refresh token valid `max_age` more seconds:
/// `refreshToken=<t>; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=<secs>`.
pub fn set_refresh(token: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{REFRESH_COOKIE}={token}; HttpOnly{secure}; SameSite=Strict; Path=/api; Max-Age={}",
        max_age.max(0)
    )
}

/// `Set-Cookie` that clears the refresh token (`Max-Age=0`).
pub fn clear_refresh(secure: bool) -> String {
    set_refresh("", 0, secure)
}

/// The first `refreshToken` value in the request's `Cookie` headers, if any
/// (an empty value is returned as empty: the use case calls it missing).
pub fn refresh_from(req: &poem::Request) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_exact() {
        assert_eq!(
            set_refresh("abc", 604_800, true),
            "refreshToken=abc; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=604800"
        );
        assert_eq!(
            set_refresh("abc", 5, false),
            "refreshToken=abc; HttpOnly; SameSite=Strict; Path=/api; Max-Age=5"
        );
        assert_eq!(
            clear_refresh(true),
            "refreshToken=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0"
        );
    }

    #[test]
    fn reads_the_cookie_among_others() {
        let req = poem::Request::builder()
            .header("cookie", "a=1; refreshToken=tok; b=2")
            .finish();
        assert_eq!(refresh_from(&req).as_deref(), Some("tok"));
        let req = poem::Request::builder()
            .header("cookie", "refreshToken=")
            .finish();
        assert_eq!(refresh_from(&req).as_deref(), Some(""));
        let req = poem::Request::builder().finish();
        assert_eq!(refresh_from(&req), None);
    }
}
