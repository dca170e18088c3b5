//! Lists in the commands' text output, summarized past a screenful: a count, counts per
//! namespace and the first few names, with `--all` for every one. JSON output never uses it.

use std::collections::BTreeMap;

/// How many items a list prints whole; past it, a summary.
pub const SCREENFUL: usize = 20;
/// How many names a summary shows.
pub const FIRST: usize = 5;
/// How many namespaces a summary counts by name; the rest are counted together.
const NAMESPACES: usize = 8;

/// `names` on one line: `none`, every name (when `all`, or when they fit a screenful), or a
/// summary: `300 in 3 namespaces (shop 120, web 100, blog 80); first 5: a, b, c, d, e; --all
/// lists every one`. `namespace` finds a name's namespace.
pub fn names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    namespace: impl Fn(&str) -> &str,
    all: bool,
) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return "none".to_string();
    }
    if all || names.len() <= SCREENFUL {
        return names.join(", ");
    }
    let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &names {
        *per_ns.entry(namespace(n)).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = per_ns.into_iter().collect();
    // Most first; ties in name order (the map's), so the line is the same every time.
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let namespaces = counts.len();
    let mut shown: Vec<String> = counts
        .iter()
        .take(NAMESPACES)
        .map(|(ns, c)| format!("{ns} {c}"))
        .collect();
    if namespaces > NAMESPACES {
        let rest: usize = counts.iter().skip(NAMESPACES).map(|(_, c)| c).sum();
        shown.push(format!(
            "{} more namespaces {rest}",
            namespaces - NAMESPACES
        ));
    }
    format!(
        "{} in {namespaces} namespace{} ({}); first {FIRST}: {}; --all lists every one",
        names.len(),
        if namespaces == 1 { "" } else { "s" },
        shown.join(", "),
        names[..FIRST].join(", ")
    )
}

/// The namespace of `NAMESPACE/NAME`.
pub fn namespace_of_name(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// The namespace of `KIND/NAMESPACE/NAME` (`KIND/NAME` for cluster-scoped objects: the
/// cluster, shown as `(cluster)`).
pub fn namespace_of_object(key: &str) -> &str {
    let mut parts = key.split('/');
    let _kind = parts.next();
    match (parts.next(), parts.next()) {
        (Some(ns), Some(_)) => ns,
        _ => "(cluster)",
    }
}

/// How many items of a list to print: all of them when `all` or when they fit a screenful,
/// else the first few.
pub fn shown(total: usize, all: bool) -> usize {
    if all || total <= SCREENFUL {
        total
    } else {
        FIRST
    }
}

/// The line after a list cut to [`shown`] items, or `None` when nothing was left out:
/// `... and 295 more plans (--all prints every one; --json has them all)`.
pub fn more(total: usize, shown: usize, what: &str) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "... and {} more {what} (--all prints every one; --json has them all)",
            total - shown
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("ns{}/app-{i:03}", if i % 3 == 0 { "a" } else { "b" }))
            .collect()
    }

    #[test]
    fn a_short_list_is_printed_whole() {
        let a = apps(3);
        let line = names(a.iter().map(String::as_str), namespace_of_name, false);
        assert_eq!(line, "nsa/app-000, nsb/app-001, nsb/app-002");
        assert_eq!(names([], namespace_of_name, false), "none");
        assert_eq!(shown(3, false), 3);
        assert_eq!(more(3, 3, "plans"), None);
    }

    #[test]
    fn a_long_list_is_counted_per_namespace_with_the_first_names() {
        let a = apps(300);
        let line = names(a.iter().map(String::as_str), namespace_of_name, false);
        assert_eq!(
            line,
            "300 in 2 namespaces (nsb 200, nsa 100); first 5: nsa/app-000, nsb/app-001, \
             nsb/app-002, nsa/app-003, nsb/app-004; --all lists every one"
        );
        let every = names(a.iter().map(String::as_str), namespace_of_name, true);
        assert_eq!(every.split(", ").count(), 300);
        assert_eq!(shown(300, false), FIRST);
        assert_eq!(shown(300, true), 300);
        assert_eq!(
            more(300, 5, "plans").as_deref(),
            Some("... and 295 more plans (--all prints every one; --json has them all)")
        );
    }

    #[test]
    fn many_namespaces_are_counted_together_past_a_few() {
        let many: Vec<String> = (0..40).map(|i| format!("Service/ns{i:02}/web")).collect();
        let line = names(many.iter().map(String::as_str), namespace_of_object, false);
        assert!(
            line.starts_with("40 in 40 namespaces (ns00 1, ns01 1,"),
            "{line}"
        );
        assert!(line.contains("32 more namespaces 32"), "{line}");
        assert_eq!(namespace_of_object("Namespace/shop"), "(cluster)");
    }
}
