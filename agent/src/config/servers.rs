//! `server = "..."` or `servers = [...]`: the URLs of calseg-server's replicas, in the order
//! the agent fails over between them.

use super::{ConfigError, Locator, check_server};
use toml::Spanned;

/// Checks a list of server URLs, replicas of one service: at least one, each by
/// [`check_server`], none twice. An error names the entry at fault by its index (`None`: the
/// list as a whole).
pub fn check_servers<S: AsRef<str>>(urls: &[S]) -> Result<Vec<String>, (Option<usize>, String)> {
    if urls.is_empty() {
        return Err((
            None,
            "lists no server; give at least one https://host:port".into(),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(urls.len());
    for (index, url) in urls.iter().enumerate() {
        let url = check_server(url.as_ref()).map_err(|m| (Some(index), m))?;
        // Compare as URLs: host case and a default port do not make another server.
        let same = |a: &str, b: &str| reqwest::Url::parse(a).ok() == reqwest::Url::parse(b).ok();
        if let Some(first) = checked.iter().position(|c| same(c, &url)) {
            let why = format!("`{url}` is listed twice (also entry {})", first + 1);
            return Err((Some(index), why));
        }
        checked.push(url);
    }
    Ok(checked)
}

/// `server = "..."` (a list of one) or `servers = [...]`, never both; empty when neither.
pub(super) fn from_raw(
    at: &Locator<'_>,
    server: Option<Spanned<String>>,
    servers: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<String>, ConfigError> {
    match (server, servers) {
        (None, None) => Ok(Vec::new()),
        (Some(one), None) => check_server(one.get_ref())
            .map(|url| vec![url])
            .map_err(|m| at.error(Some(one.span()), "server", m)),
        (None, Some(list)) => {
            let span = list.span();
            let list = list.into_inner();
            check_servers(&list.iter().map(Spanned::get_ref).collect::<Vec<_>>()).map_err(
                |(index, message)| {
                    let span = index.and_then(|i| list.get(i)).map_or(span, Spanned::span);
                    at.error(Some(span), "servers", message)
                },
            )
        }
        (Some(one), Some(list)) => {
            // Point at whichever comes second; name the line of the other.
            let line = |span| at.error(Some(span), "", String::new()).line;
            let (one_line, list_line) = (line(one.span()), line(list.span()));
            let (span, field, why) = if one.span().start > list.span().start {
                let why = format!("`servers` is already set at line {list_line}");
                (one.span(), "server", why)
            } else {
                let why = format!("`server` is already set at line {one_line}");
                (list.span(), "servers", why)
            };
            let why = format!(
                "{why}; give either `server = \"https://host:port\"` or `servers = [...]`, not both"
            );
            Err(at.error(Some(span), field, why))
        }
    }
}
