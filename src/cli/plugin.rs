//! `kubectl logbook`: the `logbook` binary run under the name `kubectl-logbook`, as kubectl's
//! plugin discovery runs it. Translates kubectl's habits (`deploy/web -n shop`, the context's
//! namespace) into `logbook audit` and runs it on a log file, or inside the controller's Pod
//! through `kubectl exec`. It only translates; the answers are `logbook audit`'s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use super::audit::{self, AuditArgs};

/// The plugin's name on PATH: kubectl runs `kubectl-logbook` for `kubectl logbook`.
pub const PLUGIN: &str = "kubectl-logbook";

/// Where the controller's Pod keeps the log (`deploy/base/controller/deployment.yaml`).
const POD_LOG: &str = "/var/lib/logbook/log.db";

const HELP: &str = "\
kubectl logbook: ask logbook's log what the controller did, and why, the way kubectl names things.

Usage:
  kubectl logbook why TYPE/NAME [-n NS] [--at TIME] [-o text|json]
  kubectl logbook log [TYPE/NAME | --app [NS/]NAME] [-n NS] [--kind K,..] [--since TIME] [-f] [-o table|json]
  kubectl logbook timeline (TYPE/NAME | --app [NS/]NAME) [-n NS] [--since TIME] [-o text|json]
  kubectl logbook verify [-o text|json]

TYPE is app, deploy, svc or ing (or the kinds' names and plurals); the namespace is -n, else the
current context's, else `default`. The rest of the flags are `logbook audit`'s (see
`logbook audit why --help` and the other subcommands' help).

Where the log is read:
  --log FILE (or LOGBOOK_LOG)   a log file here: a copy, or the live file on the controller's
                                machine; opened read-only
  otherwise                     inside the controller's Pod, through `kubectl exec` (the image
                                holds the logbook binary):
                                kubectl exec -n logbook deploy/logbook-controller -- logbook audit ...
  --controller-namespace NS     the controller's namespace (default: logbook)
  --controller TYPE/NAME        the controller's workload (default: deploy/logbook-controller)
  --kubeconfig FILE, --context NAME   passed to kubectl, and read for the context's namespace

Install: put a link named kubectl-logbook to the logbook binary on PATH
(`make install-plugin`, or `ln -s $(command -v logbook) ~/.local/bin/kubectl-logbook`);
`kubectl plugin list` then shows it.

Examples:
  kubectl logbook why deploy/web -n shop
  kubectl logbook log --app shop/web --since 2h
  kubectl logbook timeline app/web -n shop
  kubectl logbook why svc/web -n shop --log ./log-copy.db -o json
";

/// Whether this process was started as the kubectl plugin (its name is `kubectl-logbook`).
pub fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .is_some_and(|n| n == PLUGIN || n.starts_with(&format!("{PLUGIN}.")))
}

/// What `kubectl logbook ARGS` asks for, once kubectl's habits are read.
#[derive(Debug, Default, PartialEq)]
struct Request {
    /// `why`, `log`, `timeline` or `verify`.
    command: String,
    /// `TYPE/NAME`, as given.
    object: Option<String>,
    /// `--app`, as given (`NAME` or `NS/NAME`).
    app: Option<String>,
    /// `-n`/`--namespace`.
    namespace: Option<String>,
    /// `--log`.
    log: Option<PathBuf>,
    kubeconfig: Option<String>,
    context: Option<String>,
    controller_namespace: Option<String>,
    controller: Option<String>,
    /// Everything else, passed to `logbook audit SUBCOMMAND` as it is.
    rest: Vec<String>,
    /// `-h`/`--help` anywhere.
    help: bool,
}

/// Flags the plugin reads itself, with a value.
const OWN: &[&str] = &[
    "-n",
    "--namespace",
    "--app",
    "--log",
    "--kubeconfig",
    "--context",
    "--controller-namespace",
    "--controller",
];

fn parse(args: &[String]) -> Result<Request, String> {
    let mut r = Request::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag == "-h" || flag == "--help" {
            r.help = true;
            i += 1;
            continue;
        }
        if OWN.contains(&flag) {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i).cloned().ok_or_else(|| {
                        format!("{flag} needs a value (see kubectl logbook --help)")
                    })?
                }
            };
            let slot = match flag {
                "-n" | "--namespace" => &mut r.namespace,
                "--app" => &mut r.app,
                "--kubeconfig" => &mut r.kubeconfig,
                "--context" => &mut r.context,
                "--controller-namespace" => &mut r.controller_namespace,
                "--controller" => &mut r.controller,
                _ => {
                    r.log = Some(PathBuf::from(value));
                    i += 1;
                    continue;
                }
            };
            *slot = Some(value);
        } else if r.command.is_empty() && !arg.starts_with('-') {
            r.command = arg.clone();
        } else if r.object.is_none()
            && !arg.starts_with('-')
            && arg.contains('/')
            && !r.rest.last().is_some_and(|p| takes_value(p))
        {
            r.object = Some(arg.clone());
        } else {
            r.rest.push(arg.clone());
        }
        i += 1;
    }
    Ok(r)
}

/// `logbook audit` flags that take a value as the next argument.
fn takes_value(flag: &str) -> bool {
    !flag.contains('=')
        && matches!(
            flag,
            "--at"
                | "--since"
                | "--until"
                | "--kind"
                | "--from-seq"
                | "--to-seq"
                | "-o"
                | "--output"
        )
}

/// `deploy/web` in `shop` → `Deployment/shop/web`; a kind logbook does not record is refused.
fn object_key(object: &str, namespace: &str) -> Result<String, String> {
    let (kind, name) = object.split_once('/').ok_or_else(|| {
        format!("`{object}` is not TYPE/NAME; e.g. deploy/web, svc/web, ing/web, app/web")
    })?;
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "`{object}` is not TYPE/NAME; name the namespace with -n (e.g. `deploy/web -n shop`)"
        ));
    }
    let kind = audit::known_kind(kind).ok_or_else(|| {
        format!(
            "logbook records Applications, Deployments, Services and Ingresses, not `{kind}`; \
             use app/, deploy/, svc/ or ing/"
        )
    })?;
    Ok(format!("{kind}/{namespace}/{name}"))
}

/// The namespace of the current (or `--context`) context in the kubeconfig kubectl would
/// read, if it names one.
fn context_namespace(kubeconfig: Option<&str>, context: Option<&str>) -> Option<String> {
    let config = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    let name = context
        .map(str::to_string)
        .or_else(|| config.current_context.clone())?;
    config
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
}

/// The `logbook audit` arguments (after `--log`) that answer `r`.
fn audit_args(r: &Request) -> Result<Vec<String>, String> {
    let namespace = || {
        r.namespace
            .clone()
            .or_else(|| context_namespace(r.kubeconfig.as_deref(), r.context.as_deref()))
            .unwrap_or_else(|| "default".to_string())
    };
    let app = || {
        r.app.as_ref().map(|a| {
            if a.contains('/') {
                a.clone()
            } else {
                format!("{}/{a}", namespace())
            }
        })
    };
    let object = r
        .object
        .as_deref()
        .map(|o| object_key(o, &namespace()))
        .transpose()?;
    let mut out = vec![r.command.clone()];
    match r.command.as_str() {
        "why" => {
            let Some(object) = object else {
                return Err("say which object: kubectl logbook why TYPE/NAME [-n NS]".into());
            };
            out.push(object);
        }
        "log" | "timeline" => match (app(), object) {
            (Some(_), Some(_)) => {
                return Err("give an object (TYPE/NAME) or --app, not both".into());
            }
            (Some(a), None) => out.extend(["--app".to_string(), a]),
            (None, Some(o)) => out.extend(["--object".to_string(), o]),
            (None, None) if r.command == "timeline" => {
                return Err(
                    "say whose timeline: kubectl logbook timeline TYPE/NAME or --app NAME".into(),
                );
            }
            (None, None) => {
                if let Some(ns) = &r.namespace {
                    out.extend(["--namespace".to_string(), ns.clone()]);
                }
            }
        },
        "verify" => {}
        "" => return Err("say what to ask: why, log, timeline or verify (see --help)".into()),
        other => {
            return Err(format!(
                "`{other}` is not a kubectl logbook command; use why, log, timeline or verify"
            ));
        }
    }
    out.extend(r.rest.iter().cloned());
    Ok(out)
}

/// Runs `kubectl logbook ARGS` (the arguments after the program name).
pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let request = match parse(&args) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if request.help && request.command.is_empty() || args.is_empty() {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if request.help {
        // The flags are audit's: its help for the subcommand answers.
        let sub = if matches!(
            request.command.as_str(),
            "why" | "log" | "timeline" | "verify"
        ) {
            request.command.as_str()
        } else {
            return fail(&format!(
                "`{}` is not a kubectl logbook command; use why, log, timeline or verify",
                request.command
            ));
        };
        println!(
            "kubectl logbook {sub} runs `logbook audit {sub}` (TYPE/NAME and -n as kubectl takes them):\n"
        );
        return run_audit(vec!["logbook audit".into(), sub.into(), "--help".into()]);
    }
    let audit = match audit_args(&request) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let log = request
        .log
        .clone()
        .or_else(|| std::env::var_os("LOGBOOK_LOG").map(PathBuf::from));
    match log {
        Some(path) => {
            let mut argv = vec![
                "logbook audit".to_string(),
                "--log".to_string(),
                path.to_string_lossy().into_owned(),
            ];
            argv.extend(audit);
            run_audit(argv)
        }
        None => in_cluster(&request, audit),
    }
}

/// `logbook audit`'s flags, parsed from the translated arguments.
#[derive(Parser, Debug)]
#[command(name = "logbook audit")]
struct AuditCli {
    #[command(flatten)]
    args: AuditArgs,
}

fn run_audit(argv: Vec<String>) -> ExitCode {
    match AuditCli::try_parse_from(argv) {
        Ok(a) => audit::run(a.args),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
    }
}

/// Runs the question inside the controller's Pod: `kubectl exec ... -- logbook audit ...`.
fn in_cluster(r: &Request, audit: Vec<String>) -> ExitCode {
    let kubectl = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
    let mut cmd = std::process::Command::new(&kubectl);
    if let Some(k) = &r.kubeconfig {
        cmd.args(["--kubeconfig", k]);
    }
    if let Some(c) = &r.context {
        cmd.args(["--context", c]);
    }
    let namespace = r.controller_namespace.as_deref().unwrap_or("logbook");
    let workload = r
        .controller
        .as_deref()
        .unwrap_or("deploy/logbook-controller");
    cmd.args([
        "exec", "-n", namespace, workload, "--", "logbook", "audit", "--log", POD_LOG,
    ])
    .args(&audit);
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "kubectl logbook: no --log given: asking the controller's Pod ({workload} in \
             {namespace}) through kubectl exec"
        );
    }
    match cmd.status() {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
            None => fail("kubectl exec was killed by a signal"),
        },
        Err(e) => fail(&format!(
            "cannot run {} to reach the controller's Pod ({e}); install kubectl, or read a log \
             file with --log FILE",
            Path::new(&kubectl).display()
        )),
    }
}

fn fail(message: &str) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "kubectl logbook: {message}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn translate(s: &str) -> Result<Vec<String>, String> {
        audit_args(&parse(&args(s))?)
    }

    #[test]
    fn kubectl_names_become_audit_arguments() {
        assert_eq!(
            translate("why deploy/web -n shop").unwrap(),
            args("why Deployment/shop/web")
        );
        assert_eq!(
            translate("why -n shop svc/web --at 2h -o json").unwrap(),
            args("why Service/shop/web --at 2h -o json")
        );
        assert_eq!(
            translate("log --app shop/web --since 10m").unwrap(),
            args("log --app shop/web --since 10m")
        );
        assert_eq!(
            translate("log --app=web --namespace=blog -f").unwrap(),
            args("log --app blog/web -f")
        );
        assert_eq!(
            translate("log -n shop --kind plan,action").unwrap(),
            args("log --namespace shop --kind plan,action")
        );
        assert_eq!(
            translate("timeline app/web -n shop").unwrap(),
            args("timeline --object Application/shop/web")
        );
        let r = parse(&args(
            "why deploy/web -n shop --log /tmp/x.db --controller-namespace ops",
        ))
        .unwrap();
        assert_eq!(r.log, Some(PathBuf::from("/tmp/x.db")));
        assert_eq!(r.controller_namespace.as_deref(), Some("ops"));
    }

    #[test]
    fn a_value_that_looks_like_an_object_stays_with_its_flag() {
        // `--since 2025-03-14T03:12:00Z/...` is not an object; the object comes after.
        assert_eq!(
            translate("log --kind a/b deploy/web -n shop").unwrap(),
            args("log --object Deployment/shop/web --kind a/b")
        );
    }

    #[test]
    fn bad_input_is_refused_with_what_to_do() {
        let e = translate("why pod/web -n shop").unwrap_err();
        assert!(e.contains("not `pod`") && e.contains("deploy/"), "{e}");
        let e = translate("why deploy/shop/web").unwrap_err();
        assert!(e.contains("-n"), "{e}");
        let e = translate("why").unwrap_err();
        assert!(e.contains("TYPE/NAME"), "{e}");
        let e = translate("timeline -n shop").unwrap_err();
        assert!(e.contains("whose timeline"), "{e}");
        let e = translate("frobnicate").unwrap_err();
        assert!(e.contains("why, log, timeline or verify"), "{e}");
        let e = translate("log deploy/web --app web").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        assert!(parse(&args("why deploy/web -n")).is_err());
    }
}
