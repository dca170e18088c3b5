//! Reading container logs as `GET pods/NAME/log` serves them: CRI-format files (one per
//! container instance, the current and the previous) rendered with `tailLines`, `sinceSeconds`,
//! `sinceTime`, `timestamps` and `limitBytes`, or followed. Owns parsing the options and the
//! files; it must not write logs ([`super::process`] does) or pick the file ([`super::pod`]).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::status::ApiError;

/// The query options of a log request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `previous`.
    pub previous: bool,
    /// `tailLines`.
    pub tail_lines: Option<usize>,
    /// `timestamps`.
    pub timestamps: bool,
    /// `sinceSeconds` or `sinceTime`, as the earliest time.
    pub since: Option<DateTime<Utc>>,
    /// `limitBytes`.
    pub limit_bytes: Option<usize>,
}

fn flag(v: &str) -> bool {
    matches!(v, "true" | "1")
}

fn invalid(field: &str, value: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "PodLogOptions \"\" is invalid: {field}: Invalid value: {value}: {why}"
    ))
}

impl Options {
    /// From the request's query.
    pub fn parse(query: &[(String, String)]) -> Result<Options, ApiError> {
        let mut o = Options::default();
        for (k, v) in query {
            match k.as_str() {
                "container" if !v.is_empty() => o.container = Some(v.clone()),
                "follow" => o.follow = flag(v),
                "previous" => o.previous = flag(v),
                "timestamps" => o.timestamps = flag(v),
                "tailLines" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("tailLines: {v:?} is not an integer"))
                    })?;
                    if n < 0 {
                        return Err(invalid(
                            "tailLines",
                            v,
                            "must be greater than or equal to 0",
                        ));
                    }
                    o.tail_lines = Some(n as usize);
                }
                "limitBytes" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("limitBytes: {v:?} is not an integer"))
                    })?;
                    if n < 1 {
                        return Err(invalid("limitBytes", v, "must be greater than 0"));
                    }
                    o.limit_bytes = Some(n as usize);
                }
                "sinceSeconds" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("sinceSeconds: {v:?} is not an integer"))
                    })?;
                    if n < 1 {
                        return Err(invalid("sinceSeconds", v, "must be greater than 0"));
                    }
                    o.since = Some(Utc::now() - chrono::TimeDelta::seconds(n));
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(v).map_err(|e| {
                        ApiError::bad_request(format!(
                            "sinceTime: {v:?} is not an RFC 3339 time: {e}"
                        ))
                    })?;
                    o.since = Some(t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One parsed CRI log line.
struct Line<'a> {
    time: &'a str,
    content: &'a [u8],
}

fn parse_line(l: &[u8]) -> Option<Line<'_>> {
    let mut parts = l.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let _tag = parts.next()?;
    Some(Line {
        time,
        content: parts.next().unwrap_or(&[]),
    })
}

fn render_lines(data: &[u8], o: &Options, tail: bool) -> Vec<u8> {
    let lines: Vec<Line<'_>> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse_line)
        .filter(|l| match o.since {
            Some(since) => DateTime::parse_from_rfc3339(l.time)
                .map(|t| t.with_timezone(&Utc) >= since)
                .unwrap_or(true),
            None => true,
        })
        .collect();
    let skip = match (tail, o.tail_lines) {
        (true, Some(n)) => lines.len().saturating_sub(n),
        _ => 0,
    };
    let mut out = Vec::new();
    for l in &lines[skip..] {
        if o.timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.content);
        out.push(b'\n');
    }
    out
}

/// The log of one instance, rendered with the options (not following).
pub fn read(path: &Path, o: &Options) -> Vec<u8> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = render_lines(&data, o, true);
    if let Some(n) = o.limit_bytes {
        out.truncate(n);
    }
    out
}

/// The last `lines` lines of a log, at most `bytes` bytes, as text (a termination message from
/// the log, `FallbackToLogsOnError`).
pub fn tail_text(path: &Path, lines: usize, bytes: usize) -> String {
    let o = Options {
        tail_lines: Some(lines),
        ..Options::default()
    };
    let out = read(path, &o);
    let start = out.len().saturating_sub(bytes);
    String::from_utf8_lossy(&out[start..]).into_owned()
}

/// Follow a log: what is there (with the options), then new lines as they are written, until
/// `running()` turns false and the file has no more. Chunks go to `send`; it returns false when
/// the client is gone.
pub async fn follow(
    path: &Path,
    o: &Options,
    running: impl Fn() -> bool,
    mut send: impl FnMut(Vec<u8>) -> bool,
) {
    let data = std::fs::read(path).unwrap_or_default();
    let mut offset = data
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let mut sent = 0usize;
    let mut emit = |mut chunk: Vec<u8>, sent: &mut usize| -> bool {
        if let Some(limit) = o.limit_bytes {
            let room = limit.saturating_sub(*sent);
            chunk.truncate(room);
        }
        *sent += chunk.len();
        chunk.is_empty() || send(chunk)
    };
    if !emit(render_lines(&data[..offset], o, true), &mut sent) {
        return;
    }
    loop {
        if o.limit_bytes.is_some_and(|l| sent >= l) {
            return;
        }
        let alive = running();
        let data = std::fs::read(path).unwrap_or_default();
        if data.len() < offset {
            offset = 0;
        }
        let end = data[offset..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|p| offset + p + 1)
            .unwrap_or(offset);
        if end > offset {
            let chunk = render_lines(&data[offset..end], o, false);
            offset = end;
            if !emit(chunk, &mut sent) {
                return;
            }
        }
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_rendering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("0.log");
        std::fs::write(
            &f,
            "2026-01-01T00:00:00.000000001Z stdout F one\n2026-01-01T00:00:01.000000001Z stderr F two\n2099-01-01T00:00:00.000000001Z stdout F three\n",
        )
        .expect("write");
        let q = |pairs: &[(&str, &str)]| {
            Options::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .expect("options")
        };
        assert_eq!(read(&f, &q(&[])), b"one\ntwo\nthree\n");
        assert_eq!(read(&f, &q(&[("tailLines", "1")])), b"three\n");
        assert_eq!(read(&f, &q(&[("limitBytes", "5")])), b"one\nt");
        assert_eq!(read(&f, &q(&[("sinceSeconds", "60")])), b"three\n");
        assert_eq!(
            read(&f, &q(&[("timestamps", "true"), ("tailLines", "1")])),
            b"2099-01-01T00:00:00.000000001Z three\n"
        );
        let e = Options::parse(&[("tailLines".into(), "-1".into())]).expect_err("negative");
        assert!(e.message.contains("tailLines"), "{}", e.message);
    }
}
