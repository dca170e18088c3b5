# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_logbook_global_optspecs
    string join \n h/help V/version
end

function __fish_logbook_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_logbook_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_logbook_using_subcommand
    set -l cmd (__fish_logbook_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c logbook -n "__fish_logbook_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_needs_command" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "dev" -d 'Run the whole loop on this machine, no cluster needed: the sandbox, a nats-server, the controller and two executors; apply the examples and print the trail'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "controller" -d 'Run the controller: watch Applications and their children, record every event in the log, plan, and publish actions to NATS for the executors'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "executor" -d 'Run an executor: apply actions from NATS to the cluster and report their outcomes'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "audit" -d 'Query the log, explain why an object is the way it is, check the hash chain'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "keys" -d 'Make signing keys: the controller signs actions, executors sign outcomes, and each side acts only on what a key it trusts signed'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "plan" -d 'Print the actions that would bring the objects in --actual to what the Applications ask for'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "crd" -d 'Print the Application CustomResourceDefinition as YAML (what schema/ holds)'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "ui" -d 'Serve the incident view of a log in a browser: the timeline, an entry\'s chain, an object\'s history, the state at a point, verify and what-if, each at a stable URL'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "sandbox" -d 'Run the Kubernetes API emulator standalone and write a kubeconfig for it'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "man" -d 'Write the man pages of logbook and of each of its subcommands'
complete -c logbook -n "__fish_logbook_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l data-dir -d 'Where everything lives: the log, the sandbox\'s state, NATS\'s store, the kubeconfig and the keys (default: $XDG_STATE_HOME/logbook/dev, else ~/.local/state/logbook/dev; printed at start)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand dev" -s f -l file -d 'More Application manifests to apply at start (files, or directories of .yaml files); an Application with the namespace and name of a built-in example replaces it' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l executors -d 'How many executors to run' -r
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l in-flight -d 'Actions each executor handles at once' -r
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l ready-delay -d 'How long the sandbox takes to report a Deployment\'s replicas ready' -r
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l images -d 'The sandbox node\'s image map (YAML; see `logbook sandbox --print-images`): which images run as local programs; the others\' Pods are simulated' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l no-examples -d 'Do not apply the built-in examples (three Applications in `shop` and `blog`, one in `default`): start empty, or with only what -f names'
complete -c logbook -n "__fish_logbook_using_subcommand dev" -l until-ready -d 'Exit once every applied Application is Ready (for scripts and tests)'
complete -c logbook -n "__fish_logbook_using_subcommand dev" -s q -l quiet -d 'Do not print the trail, only the summary'
complete -c logbook -n "__fish_logbook_using_subcommand dev" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand dev" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster config)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l context -d 'The kubeconfig context to use (default: its current context)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-url -d 'NATS server URL(s), comma-separated' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-creds -d 'A NATS credentials file (JWT and NKey seed), as `nsc` writes it' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-token -d 'A NATS authentication token' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-user -d 'A NATS user to authenticate as, with `--nats-password` (per-role users, as `deploy/` configures them)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-password -d 'The password of `--nats-user` (better given as the environment variable)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l nats-tls-ca -d 'A PEM file of CA certificates to trust for TLS (turns TLS on)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l ack-wait -d 'How long a delivered action may stay unacknowledged before it is delivered again' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l max-deliver -d 'Deliveries of one action before it is abandoned' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l stream-replicas -d 'Stream replicas (3 on a NATS cluster)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l ingress-class -d '`spec.ingressClassName` of the shared Ingresses (default: the cluster\'s default class)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l path-type -d 'The `pathType` of Ingress paths' -r -f -a "Prefix\t''
Exact\t''"
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l default-cpu-request -d 'CPU request of containers whose Application asks for no requests (e.g. `100m`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l default-memory-request -d 'Memory request of containers whose Application asks for no requests (e.g. `128Mi`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l coalesce-shared-writes -d 'One write in flight per shared Ingress: while an apply of it is on its way, newer versions wait and are asked for at once when it is observed (`false`: every plan that changes its rules writes it)' -r -f -a "true\t''
false\t''"
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l leader-elect -d 'Wait as a standby until this process holds the Lease; `--leader-elect=false` for a single controller (it then leads from the start: run only one)' -r -f -a "true\t''
false\t''"
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l lease-name -d 'The Lease\'s name' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l lease-namespace -d 'The Lease\'s namespace (default: $POD_NAMESPACE, else `default`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l identity -d 'This process\'s identity: the Lease holder and the Events\' reportingInstance; unique per process (default: $POD_NAME, else hostname-pid)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l lease-duration -d 'How long a Lease that is not renewed keeps standbys waiting (whole seconds)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l renew-deadline -d 'How long the leader keeps leading without renewing; it then stops planning and exits' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l retry-period -d 'How often to try to acquire or renew the Lease' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l signing-key -d 'This process\'s private key: the controller signs actions with it, an executor its outcomes (`logbook keys generate NAME --out DIR` makes one)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l key-name -d 'The name the key signs as (default: `controller` for the controller, `executor` for an executor); the other side\'s trusted keys must list it under that name' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l trusted-keys -d 'Public keys trusted, one `NAME HEX` line each: executors act only on actions signed by the key named `controller`; the controller records outcomes signed by any other' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l admin-addr -d 'Address of the admin server (/metrics, /healthz, /readyz; the controller\'s also takes POST /checkpoint), or `off`. Loopback unless asked otherwise: a Pod passes `--admin-addr=0.0.0.0:9090` for its probes and scraping' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l log-format -d 'Log line format: `text` (for people) or `json` (one object per line, for collectors). The level comes from RUST_LOG' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`)'"
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l log -d 'The log file: created when missing, resumed from when present' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l debounce -d 'Quiet period after an event before planning, so a burst is planned once' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l resync -d 'How often the whole world is planned again (a recorded resync); 0 turns it off' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l verify-every -d 'How often the whole log\'s hash chain is checked again while running, on a read-only connection: damage is logged and counted in `logbook_log_verify_failures_total` (0: only the check at start)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l grace -d 'On SIGTERM, how long to publish what is left before exiting' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l answer-deadline -d 'How long an action may go without an outcome before it is published again from the log (a recorded re-drive; then twice as long each time, up to 10m). Keep it above --ack-wait, so an action an executor is still working on is not sent twice' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l checkpoint-every -d 'Record a checkpoint (the world as folded, ~5 MB per 1,000 Applications) every N entries, so that `logbook-replay ... --from SEQ` loads it instead of folding the log from its start; 0: only when asked (`curl -X POST http://ADMIN_ADDR/checkpoint`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand controller" -l liveness-probes -d 'Also use an Application\'s healthCheck as its container\'s liveness probe'
complete -c logbook -n "__fish_logbook_using_subcommand controller" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand controller" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster config)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l context -d 'The kubeconfig context to use (default: its current context)' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-url -d 'NATS server URL(s), comma-separated' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-creds -d 'A NATS credentials file (JWT and NKey seed), as `nsc` writes it' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-token -d 'A NATS authentication token' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-user -d 'A NATS user to authenticate as, with `--nats-password` (per-role users, as `deploy/` configures them)' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-password -d 'The password of `--nats-user` (better given as the environment variable)' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l nats-tls-ca -d 'A PEM file of CA certificates to trust for TLS (turns TLS on)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l ack-wait -d 'How long a delivered action may stay unacknowledged before it is delivered again' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l max-deliver -d 'Deliveries of one action before it is abandoned' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l stream-replicas -d 'Stream replicas (3 on a NATS cluster)' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l admin-addr -d 'Address of the admin server (/metrics, /healthz, /readyz; the controller\'s also takes POST /checkpoint), or `off`. Loopback unless asked otherwise: a Pod passes `--admin-addr=0.0.0.0:9090` for its probes and scraping' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l signing-key -d 'This process\'s private key: the controller signs actions with it, an executor its outcomes (`logbook keys generate NAME --out DIR` makes one)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l key-name -d 'The name the key signs as (default: `controller` for the controller, `executor` for an executor); the other side\'s trusted keys must list it under that name' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l trusted-keys -d 'Public keys trusted, one `NAME HEX` line each: executors act only on actions signed by the key named `controller`; the controller records outcomes signed by any other' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l log-format -d 'Log line format: `text` (for people) or `json` (one object per line, for collectors). The level comes from RUST_LOG' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`)'"
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l name -d 'This executor\'s name, recorded in every outcome (default: host name and pid)' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l in-flight -d 'Actions handled at once by this process' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l grace -d 'On shutdown, how long to finish the actions in flight before handing them back' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -l namespaces -d 'The namespaces this executor acts in, comma-separated (default: all); an action in any other namespace is refused with a failed outcome' -r
complete -c logbook -n "__fish_logbook_using_subcommand executor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand executor" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -l log -d 'The log file. Opened read-only: audit never writes it and never holds a lock the controller waits for, so it can run while the controller appends' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -f -a "log" -d 'Print the entries that match, oldest first (newest last); --follow keeps printing as entries are appended'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -f -a "why" -d 'Explain an object: the last action that changed it, the plan that produced the action, the events that plan read, and the executor\'s outcome'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -f -a "verify" -d 'Check the hash chain from the first entry; name the first entry edited, removed or moved. Then check the file: SQLite\'s integrity check (its pages, and a version-1 log\'s audit indexes), and the audit keys against the entries. Exit 0 when intact, 1 when not'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -f -a "timeline" -d 'Tell the story of an Application (with its children) or of one object, in log order: each observation with the fields it changed, each plan that touched it, the actions and their reasons, and each outcome with its executor, attempt and resourceVersion'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and not __fish_seen_subcommand_from log why verify timeline help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l app -d 'Only entries about this Application (NAMESPACE/NAME): its events, and the actions and outcomes of its children' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l object -d 'Only entries about this object: KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped). Kinds are case-insensitive; app, deploy, svc, ing and plurals are understood' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -s n -l namespace -d 'Only entries about objects in this namespace' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l kind -d 'Only entries of these kinds: event, plan, action, outcome, marker (repeat the flag or separate with commas)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l since -d 'Only entries at or after this time (RFC 3339, or a duration meaning that long ago: 10m)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l until -d 'Only entries before this time (RFC 3339, or a duration meaning that long ago: 10m)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l from-seq -d 'Only entries from this seq on (inclusive). Beyond the end of the log it is an error, unless --follow waits for it' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l to-seq -d 'Only entries up to this seq (inclusive); --follow stops once the log reaches it' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -s o -l output -d 'Output: one line per entry (time, seq, kind, what it says), or JSON Lines' -r -f -a "table\t'One line per entry: time, seq, kind and what it says'
json\t'One JSON object per line'"
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -l log -d 'The log file. Opened read-only: audit never writes it and never holds a lock the controller waits for, so it can run while the controller appends' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -s f -l follow -d 'Keep printing matching entries as they are appended (polls every 200 ms), until Ctrl-C, SIGTERM or standard output closes'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from log" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from why" -l at -d 'Explain the object as it was at this time (RFC 3339, or a duration meaning that long ago: 2h) instead of now: only entries stamped at or before it count' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from why" -s o -l output -d 'Output: a readable narrative, or the same chain as one JSON document' -r -f -a "text\t'Readable text'
json\t'One JSON document'"
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from why" -l log -d 'The log file. Opened read-only: audit never writes it and never holds a lock the controller waits for, so it can run while the controller appends' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from why" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from why" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from verify" -s o -l output -d 'Output: one line, or one JSON document (for CI)' -r -f -a "text\t'Readable text'
json\t'One JSON document'"
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from verify" -l log -d 'The log file. Opened read-only: audit never writes it and never holds a lock the controller waits for, so it can run while the controller appends' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -l app -d 'The Application (NAMESPACE/NAME), with its children' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -l object -d 'One object: KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -l since -d 'Only steps at or after this time (RFC 3339, or a duration meaning that long ago: 10m)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -l until -d 'Only steps at or before this time (RFC 3339, or a duration meaning that long ago)' -r
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -s o -l output -d 'Output: one line per step, or one JSON object per step' -r -f -a "text\t'Readable text'
json\t'One JSON document'"
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -l log -d 'The log file. Opened read-only: audit never writes it and never holds a lock the controller waits for, so it can run while the controller appends' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from timeline" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "log" -d 'Print the entries that match, oldest first (newest last); --follow keeps printing as entries are appended'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "why" -d 'Explain an object: the last action that changed it, the plan that produced the action, the events that plan read, and the executor\'s outcome'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check the hash chain from the first entry; name the first entry edited, removed or moved. Then check the file: SQLite\'s integrity check (its pages, and a version-1 log\'s audit indexes), and the audit keys against the entries. Exit 0 when intact, 1 when not'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "timeline" -d 'Tell the story of an Application (with its children) or of one object, in log order: each observation with the fields it changed, each plan that touched it, the actions and their reasons, and each outcome with its executor, attempt and resourceVersion'
complete -c logbook -n "__fish_logbook_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and not __fish_seen_subcommand_from generate help" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and not __fish_seen_subcommand_from generate help" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and not __fish_seen_subcommand_from generate help" -f -a "generate" -d 'Make an Ed25519 key pair: DIR/NAME.key (private, mode 0600; give it to that process with --signing-key) and DIR/NAME.pub (one `NAME HEX` line; add it to the other side\'s --trusted-keys file). Never overwrites a key'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and not __fish_seen_subcommand_from generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and __fish_seen_subcommand_from generate" -l out -d 'The directory to write the two files to (created when missing)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand keys; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and __fish_seen_subcommand_from generate" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Make an Ed25519 key pair: DIR/NAME.key (private, mode 0600; give it to that process with --signing-key) and DIR/NAME.pub (one `NAME HEX` line; add it to the other side\'s --trusted-keys file). Never overwrites a key'
complete -c logbook -n "__fish_logbook_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand plan" -s f -l filename -d 'YAML file(s) of Applications (multi-document; `-` reads standard input)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand plan" -l actual -d 'YAML file(s) of the objects that exist now (Deployments, Services, Ingresses, or a `kind: List` as `kubectl get -o yaml` prints); empty when not given' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand plan" -s o -l output -d 'Output format: a table of actions, the objects to apply as YAML, or the actions as JSON' -r -f -a "table\t''
yaml\t''
json\t''"
complete -c logbook -n "__fish_logbook_using_subcommand plan" -l ingress-class -d '`spec.ingressClassName` of the shared Ingresses' -r
complete -c logbook -n "__fish_logbook_using_subcommand plan" -s n -l namespace -d 'Namespace of Applications and objects that name none' -r
complete -c logbook -n "__fish_logbook_using_subcommand plan" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand plan" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand crd" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand crd" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand ui" -l log -d 'The log file. Opened read-only by every request: the UI never writes it, and it can serve the live file while the controller appends (the timeline follows it)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand ui" -l addr -d 'Where to listen. Loopback by default; any other address needs --allow-remote' -r
complete -c logbook -n "__fish_logbook_using_subcommand ui" -l allow-remote -d 'Allow listening on a non-loopback address. The UI has no login: anyone who can reach the address can read the whole log'
complete -c logbook -n "__fish_logbook_using_subcommand ui" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand ui" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l addr -d 'Address to listen on; port 0 picks a free port' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l kubeconfig -d 'Where to write the kubeconfig for kube and kubectl (default: a file in the temporary directory, removed on exit)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l state -d 'Restore objects from this file at start (if it exists) and save them to it on exit' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l data-dir -d 'Where Pods\' logs, working directories and volumes are kept (default: a directory in the temporary directory, removed on exit); give one with --state to keep volumes\' data across restarts' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l ready-delay -d 'How long a Deployment takes to report all replicas ready (`500ms`, `2s`, `1m`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l history -d 'How many change events are kept for watches that resume from an older resourceVersion' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l history-bytes -d 'How many bytes of change events are kept for such watches (an upper estimate of their memory; `65536`, `512KiB`, `64MiB`, `1GiB`); the oldest go first, and a watch from an older resourceVersion gets 410 Gone, as with --history' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l header-timeout -d 'How long a client has to send a request\'s headers, from connecting or from the first byte of a later request; slower clients are disconnected (`0`: no limit)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l idle-timeout -d 'How long a keep-alive connection may stay open with no request after a response (watches being streamed are never cut; `0`: no limit)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l body-timeout -d 'How long a request body may take to arrive once its headers are in; slower ones get 408 (`0`: no limit)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l seed -d 'Seed of the fault-injection random sequence' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l bookmark-interval -d 'How often watches that allow bookmarks get one (`10s`)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l images -d 'The image map (YAML): which container images the node runs as local programs, from which directories, as which user; an image not in it never runs a process (its Pods are simulated). Default: the built-in map (busybox, alpine, git, postgres:15, logbook\'s image); print it with --print-images' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l restart-backoff -d 'The node\'s restart back-off after a container\'s first immediate restart, doubling up to five minutes (`10s` as the kubelet; shorter for tests)' -r
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -l print-images -d 'Print the image map in use (the built-in one, or --images) as YAML and exit'
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand sandbox" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand completions" -l dir -d 'Write the scripts into this directory (created if missing) under the names each shell looks for (`logbook.bash`, `_logbook`, `logbook.fish`): SHELL\'s only, or bash\'s, zsh\'s and fish\'s' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook -n "__fish_logbook_using_subcommand completions" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand man" -l dir -d 'The directory to write them into (created if missing); without it, the command\'s own page goes to stdout (`logbook man | man -l -`)' -r -F
complete -c logbook -n "__fish_logbook_using_subcommand man" -s h -l help -d 'Print help'
complete -c logbook -n "__fish_logbook_using_subcommand man" -s V -l version -d 'Print version'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "dev" -d 'Run the whole loop on this machine, no cluster needed: the sandbox, a nats-server, the controller and two executors; apply the examples and print the trail'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "controller" -d 'Run the controller: watch Applications and their children, record every event in the log, plan, and publish actions to NATS for the executors'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "executor" -d 'Run an executor: apply actions from NATS to the cluster and report their outcomes'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "audit" -d 'Query the log, explain why an object is the way it is, check the hash chain'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "keys" -d 'Make signing keys: the controller signs actions, executors sign outcomes, and each side acts only on what a key it trusts signed'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "plan" -d 'Print the actions that would bring the objects in --actual to what the Applications ask for'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "crd" -d 'Print the Application CustomResourceDefinition as YAML (what schema/ holds)'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "ui" -d 'Serve the incident view of a log in a browser: the timeline, an entry\'s chain, an object\'s history, the state at a point, verify and what-if, each at a stable URL'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "sandbox" -d 'Run the Kubernetes API emulator standalone and write a kubeconfig for it'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "man" -d 'Write the man pages of logbook and of each of its subcommands'
complete -c logbook -n "__fish_logbook_using_subcommand help; and not __fish_seen_subcommand_from dev controller executor audit keys plan crd ui sandbox completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook -n "__fish_logbook_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "log" -d 'Print the entries that match, oldest first (newest last); --follow keeps printing as entries are appended'
complete -c logbook -n "__fish_logbook_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "why" -d 'Explain an object: the last action that changed it, the plan that produced the action, the events that plan read, and the executor\'s outcome'
complete -c logbook -n "__fish_logbook_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Check the hash chain from the first entry; name the first entry edited, removed or moved. Then check the file: SQLite\'s integrity check (its pages, and a version-1 log\'s audit indexes), and the audit keys against the entries. Exit 0 when intact, 1 when not'
complete -c logbook -n "__fish_logbook_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "timeline" -d 'Tell the story of an Application (with its children) or of one object, in log order: each observation with the fields it changed, each plan that touched it, the actions and their reasons, and each outcome with its executor, attempt and resourceVersion'
complete -c logbook -n "__fish_logbook_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "generate" -d 'Make an Ed25519 key pair: DIR/NAME.key (private, mode 0600; give it to that process with --signing-key) and DIR/NAME.pub (one `NAME HEX` line; add it to the other side\'s --trusted-keys file). Never overwrites a key'
