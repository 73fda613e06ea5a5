//! `/healthz`, `/livez`, `/readyz` as kube-apiserver answers them (apiserver `pkg/server/healthz`):
//! `ok`, or with `?verbose` one line per check (`[+]ping ok`) and `<name> check passed`; a
//! failing check makes it 500 with the listing whatever `verbose` says (the reason withheld:
//! the endpoints are public); `?exclude=<check>` skips one; `/<name>/<check>` runs one check
//! (`ok`, or 500 `internal server error: <reason>`).
//!
//! Checks: `ping` (always), `log` (always), `etcd` (the store's writer runs); `/readyz` also
//! has `etcd-readiness` (the same) and `shutdown` (fails once the daemon is stopping, so load
//! balancers stop sending before the listeners close).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// What the checks look at.
#[derive(Clone, Copy, Debug)]
pub struct State {
    pub store_open: bool,
    pub shutting_down: bool,
}

type Check = (&'static str, fn(&State) -> Result<(), &'static str>);

fn ok(_: &State) -> Result<(), &'static str> {
    Ok(())
}

fn etcd(s: &State) -> Result<(), &'static str> {
    if s.store_open {
        Ok(())
    } else {
        Err("the store is not open")
    }
}

fn shutdown(s: &State) -> Result<(), &'static str> {
    if s.shutting_down {
        Err("process is shutting down")
    } else {
        Ok(())
    }
}

const LIVE: &[Check] = &[("ping", ok), ("log", ok), ("etcd", etcd)];
const READY: &[Check] = &[
    ("ping", ok),
    ("log", ok),
    ("etcd", etcd),
    ("etcd-readiness", etcd),
    ("shutdown", shutdown),
];

fn text(code: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// `GET /<name>[/<check>]` with `params` (the decoded query); `None` for an unknown check (404).
pub fn serve(
    name: &str,
    sub: &[&str],
    params: &[(String, String)],
    st: &State,
) -> Option<Response> {
    let checks = match name {
        "readyz" => READY,
        "healthz" | "livez" => LIVE,
        _ => return None,
    };
    match sub {
        [] => Some(root(name, checks, params, st)),
        [check] => {
            let (_, f) = checks.iter().find(|(n, _)| n == check)?;
            Some(match f(st) {
                Ok(()) => text(StatusCode::OK, "ok".into()),
                // http.Error adds the newline.
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: {e}\n"),
                ),
            })
        }
        _ => None,
    }
}

fn root(name: &str, checks: &[Check], params: &[(String, String)], st: &State) -> Response {
    let mut excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    let mut out = String::new();
    let mut failed = false;
    for (check, f) in checks {
        if excluded.contains(check) {
            excluded.retain(|e| e != check);
            out.push_str(&format!("[+]{check} excluded: ok\n"));
            continue;
        }
        match f(st) {
            Ok(()) => out.push_str(&format!("[+]{check} ok\n")),
            Err(e) => {
                tracing::info!("{name} check {check} failed: {e}");
                out.push_str(&format!("[-]{check} failed: reason withheld\n"));
                failed = true;
            }
        }
    }
    if !excluded.is_empty() {
        excluded.sort_unstable();
        excluded.dedup();
        let quoted: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
        out.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(", ")
        ));
    }
    if failed {
        out.push_str(&format!("{name} check failed\n"));
        return text(StatusCode::INTERNAL_SERVER_ERROR, out);
    }
    if !params.iter().any(|(k, _)| k == "verbose") {
        return text(StatusCode::OK, "ok".into());
    }
    out.push_str(&format!("{name} check passed\n"));
    text(StatusCode::OK, out)
}
