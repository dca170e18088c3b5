//! `logbook ui` in a real headless Chromium (Debian's package, over the DevTools protocol): the
//! timeline of a recorded history shows one mark per entry; clicking an action shows its plan,
//! events and outcome; a deep link opens the same entry; the diff of two versions shows exactly
//! the changed fields; a damaged log shows the error page. Screenshots of each view, light and
//! dark, go to `$CARGO_TARGET_DIR/ui-screenshots` (or `target/ui-screenshots`) for review.

use logbook::reconcile::PlannerConfig;
use logbook::record::{Body, Entry, EntryKind, ObjKey};
use logbook_testkit::browser::Browser;
use logbook_testkit::history::{hand_edit_versions, standard};
use logbook_testkit::ui::UiServer;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("ui-screenshots")
}

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Both themes of the current view, as `NAME-light.png` and `NAME-dark.png`.
fn shoot(b: &mut Browser, name: &str) {
    let dir = screenshots();
    for dark in [false, true] {
        ok(b.color_scheme(dark));
        ok(b.wait_for(
            &format!(
                "getComputedStyle(document.body).backgroundColor === '{}'",
                if dark {
                    "rgb(13, 17, 23)"
                } else {
                    "rgb(255, 255, 255)"
                }
            ),
            WAIT,
        ));
        let theme = if dark { "dark" } else { "light" };
        ok(b.screenshot(&dir.join(format!("{name}-{theme}.png"))));
    }
    ok(b.color_scheme(false));
}

#[test]
fn the_ui_in_a_real_browser() {
    let started = Instant::now();
    // Chromium first: its absence is an error that says how to install it, not a skip.
    let mut b = Browser::start()
        .unwrap_or_else(|e| panic!("the browser test needs a headless Chromium: {e}"));
    let h = standard(PlannerConfig::default());
    let entries: Vec<Entry> = h.entries();
    let server = UiServer::start(&h.copy("ui-browser.db"));

    // The timeline: one mark per entry, by kind.
    ok(b.navigate(&format!("{}/timeline", server.url)));
    ok(b.wait_for(
        "document.querySelectorAll('#timeline .mark').length > 0",
        WAIT,
    ));
    let count = |b: &mut Browser, sel: &str| -> u64 {
        ok(b.eval(&format!("document.querySelectorAll('{sel}').length")))
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(count(&mut b, "#timeline .mark"), entries.len() as u64);
    for kind in [
        EntryKind::Event,
        EntryKind::Plan,
        EntryKind::Action,
        EntryKind::Outcome,
    ] {
        let want = entries.iter().filter(|e| e.kind() == kind).count() as u64;
        assert_eq!(
            count(&mut b, &format!("#timeline .mark.kind-{}", kind.as_str())),
            want,
            "{kind:?} marks"
        );
    }
    shoot(&mut b, "timeline");
    // Zoom from the keyboard: the window lands in the URL (a deep link to it) and is reloaded.
    ok(b.eval("document.querySelector('#timeline svg').focus()"));
    ok(b.press("+"));
    ok(b.wait_for(
        "location.search.includes('from=') && location.search.includes('to=')",
        WAIT,
    ));
    let zoomed = ok(b.eval("location.pathname + location.search"));
    ok(b.wait_for(
        "document.querySelector('#tl-status').textContent.includes('entries in this window') \
         && location.search.includes('to=')",
        WAIT,
    ));
    ok(b.navigate(&format!(
        "{}{}",
        server.url,
        zoomed.as_str().unwrap_or("/timeline")
    )));
    ok(b.wait_for(
        "document.querySelector('#tl-status').textContent.includes('entries in this window')",
        WAIT,
    ));
    ok(b.navigate(&format!("{}/timeline", server.url)));
    ok(b.wait_for(
        &format!(
            "document.querySelectorAll('#timeline .mark').length === {}",
            entries.len()
        ),
        WAIT,
    ));

    // Clicking an action: its plan, the events the plan read, its outcome.
    let key = ObjKey::new("Deployment", "shop", "web");
    let action = entries
        .iter()
        .find(|e| matches!(&e.body, Body::Action(a) if a.action.target == key))
        .expect("an action on Deployment/shop/web");
    let Body::Action(rec) = &action.body else {
        unreachable!()
    };
    ok(b.eval(&format!(
        "document.querySelector('#timeline .mark[data-seq=\"{}\"]')\
         .dispatchEvent(new MouseEvent('click', {{bubbles: true}}))",
        action.seq
    )));
    ok(b.wait_for(
        &format!(
            "location.pathname === '/entry/{}' && document.querySelector('#chain-outcomes .node')",
            action.seq
        ),
        WAIT,
    ));
    let text = |b: &mut Browser, sel: &str| -> String {
        ok(b.eval(&format!("document.querySelector('{sel}').innerText")))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let plan = text(&mut b, "#chain-plan");
    assert!(plan.contains(&format!("plan #{}", rec.plan_seq)), "{plan}");
    assert!(count(&mut b, "#chain-events .node.event") >= 1);
    let outcomes = text(&mut b, "#chain-outcomes");
    assert!(outcomes.contains("applied by executor-1"), "{outcomes}");
    assert!(
        outcomes.contains(&format!("Audit-ID {}", rec.action.id)),
        "{outcomes}"
    );
    let actions = text(&mut b, "#chain-actions");
    assert!(
        actions.contains(&format!("action #{}", action.seq)),
        "{actions}"
    );
    let why = text(&mut b, "#why");
    assert!(why.starts_with("Deployment/shop/web, as of"), "{why}");
    let chain = text(&mut b, "#chain");
    shoot(&mut b, "entry");

    // A deep link opens the same entry.
    ok(b.navigate("about:blank"));
    ok(b.navigate(&format!("{}/entry/{}", server.url, action.seq)));
    ok(b.wait_for("document.querySelector('#chain-outcomes .node')", WAIT));
    assert_eq!(text(&mut b, "#chain"), chain);
    // Keyboard: back on the timeline, focus a mark and press Enter.
    ok(b.navigate(&format!("{}/timeline", server.url)));
    ok(b.wait_for(
        "document.querySelectorAll('#timeline .mark').length > 0",
        WAIT,
    ));
    let plan_seq = rec.plan_seq;
    ok(b.eval(&format!(
        "document.querySelector('#timeline .mark[data-seq=\"{plan_seq}\"]').focus()"
    )));
    ok(b.press("Enter"));
    ok(b.wait_for(
        &format!("location.pathname === '/entry/{plan_seq}' && document.querySelector('#chain-actions .node')"),
        WAIT,
    ));

    // The diff between two versions: exactly the changed fields.
    let (a, z) = hand_edit_versions(&entries);
    ok(b.navigate(&format!(
        "{}/object/apps/v1/Deployment/blog/site?a={a}&b={z}",
        server.url
    )));
    ok(b.wait_for("document.querySelector('#diff tr.change')", WAIT));
    let paths =
        ok(b.eval("[...document.querySelectorAll('#diff tr.change')].map(r => r.dataset.path)"));
    assert_eq!(paths, serde_json::json!(["spec.replicas"]));
    let row = text(&mut b, "#diff tr.change");
    assert!(row.contains('5'), "{row}");
    shoot(&mut b, "diff");

    // A damaged log: the error page, with its status.
    let dir = tempfile::tempdir().expect("a directory");
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, b"not a log\n".repeat(500)).expect("written");
    let bad = UiServer::start(&damaged);
    ok(b.navigate(&format!("{}/timeline", bad.url)));
    ok(b.wait_for("document.querySelector('#error')", WAIT));
    assert_eq!(
        ok(b.eval("document.querySelector('#error').dataset.status")),
        serde_json::json!("503")
    );
    let message = text(&mut b, "#error");
    assert!(message.contains("cannot be read"), "{message}");
    shoot(&mut b, "error");

    drop(b);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the browser test took {:?}",
        started.elapsed()
    );
}
