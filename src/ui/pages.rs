//! The UI's HTML: the one page every view is drawn in (the browser routes by its URL), checked
//! first for deep links (an entry past the end, an unknown object), and the error pages.
//!
//! Owns those documents and their statuses; it must not answer data questions (the page asks
//! [`super::api`]) nor write the log.

use super::Shared;
use super::api::{UiError, parse_object_path, with_log};
use crate::log::Filter;
use crate::replay::{Point, check_within};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("assets/index.html");

/// The page, for `/`, `/timeline`, `/state`, `/verify`, `/what-if`: it reads its view from the
/// URL. A log that cannot be opened gets the error page instead.
pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    match with_log(&shared, |reader| Ok(reader.last_seq()?)).await {
        Ok(_) => Html(INDEX_HTML).into_response(),
        Err(e) => error_page(&e),
    }
}

/// `/entry/SEQ`: the page, when the log holds entry SEQ.
pub async fn entry_page(State(shared): State<Arc<Shared>>, Path(seq): Path<String>) -> Response {
    let Some(seq) = seq.trim().parse::<u64>().ok().filter(|s| *s > 0) else {
        return error_page(&UiError::BadRequest(format!(
            "{seq:?} is not an entry number; entries are numbered from 1 (e.g. /entry/123)"
        )));
    };
    let found = with_log(&shared, move |reader| {
        check_within(reader, Point::Seq(seq))?;
        Ok(())
    })
    .await;
    match found {
        Ok(()) => Html(INDEX_HTML).into_response(),
        Err(e) => error_page(&e),
    }
}

/// `/object/[GROUP/]VERSION/KIND/NS/NAME`: the page, when the log holds an entry about it.
pub async fn object_page(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let key = match parse_object_path(&key) {
        Ok(k) => k,
        Err(e) => return error_page(&e),
    };
    let found = with_log(&shared, move |reader| {
        let any = reader
            .query(&Filter::new().object(&key).limit(1).as_stored())
            .next()
            .transpose()?;
        match any {
            Some(_) => Ok(()),
            None => Err(UiError::NotFound(format!(
                "{} holds nothing about {key}. Check the kind, namespace and name (the kind is \
                 case-sensitive: Deployment, Service, Ingress, Application); the timeline lists \
                 what it holds",
                reader.path().display()
            ))),
        }
    })
    .await;
    match found {
        Ok(()) => Html(INDEX_HTML).into_response(),
        Err(e) => error_page(&e),
    }
}

/// Any path the UI does not serve.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_page(&UiError::NotFound(format!(
        "there is no page at {}. The views are /timeline, /entry/SEQ, \
         /object/[GROUP/]VERSION/KIND/NAMESPACE/NAME, /state, /verify and /what-if",
        uri.path()
    )))
}

/// A refused request: JSON for `/api/`, else a page.
pub fn refusal(status: StatusCode, message: &str, api: bool) -> Response {
    if api {
        return (
            status,
            axum::Json(serde_json::json!({"error": message, "status": status.as_u16()})),
        )
            .into_response();
    }
    page_with(status, "Refused", message)
}

/// The error page for `e`, with its status.
pub fn error_page(e: &UiError) -> Response {
    let title = match e {
        UiError::Log(_) => "The log cannot be read",
        UiError::NotFound(_) => "Not in this log",
        UiError::BadRequest(_) => "This address is not one logbook ui understands",
        UiError::Unprocessable(_) => "This configuration cannot be used",
        UiError::Internal(_) => "Something failed in logbook ui",
    };
    page_with(e.status(), title, &e.to_string())
}

fn page_with(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · logbook</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         </head><body class=\"error-page\"><main id=\"error\" role=\"alert\" data-status=\"{code}\">\
         <h1>{title}</h1><p class=\"status\">HTTP {code}</p><p class=\"message\">{message}</p>\
         <p><a href=\"/timeline\">Back to the timeline</a></p></main></body></html>\n",
        title = escape(title),
        code = status.as_u16(),
        message = escape(message),
    );
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `s` safe inside HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
