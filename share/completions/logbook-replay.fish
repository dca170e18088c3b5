# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_logbook_replay_global_optspecs
    string join \n log= q/quiet h/help V/version
end

function __fish_logbook_replay_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_logbook_replay_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_logbook_replay_using_subcommand
    set -l cmd (__fish_logbook_replay_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "verify" -d 'Fold the log and recompute every recorded plan from exactly the prefix it read'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "state" -d 'The world as the controller saw it at a point: Applications, managed objects and pending actions, as a v1 List kubectl can read'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "timeline" -d 'An incident\'s narrative for one Application or object: what was observed (and what changed), what was planned and why, what was applied, by which executor, how it went'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "what-if" -d 'Recompute the history under another configuration (or this build\'s planner) and list, action by action, what would have been done differently'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "export" -d 'Entries as JSON Lines (seq, id, at, kind, keys, body, prev_hash, hash), for jq and notebooks'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "man" -d 'Write the man pages of logbook-replay and of each of its subcommands'
complete -c logbook-replay -n "__fish_logbook_replay_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l from -d 'Check plans from this seq on, starting from the nearest checkpoint at or before it (loaded instead of folding the log from its start, its digest checked first; a damaged one is passed over for an earlier one). The hash chain is then checked from that checkpoint on. A log without checkpoints is folded from its start, as before' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l until -d 'Stop after this seq or time (RFC 3339)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l json -d 'Write the report as JSON (for CI) instead of text'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l skip-chain -d 'Skip the hash-chain check (only the replay)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -l all -d 'Print every unreadable entry the report lists; the text report otherwise shows the first few past a screenful. JSON always has them all'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand verify" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -l at -d 'The point: a seq, or a time (RFC 3339; the last entry at or before it)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -l from -d 'Start from the nearest checkpoint at or before this seq instead of the start of the log (at most --at; a time --at is then looked for after that checkpoint)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -s n -l namespace -d 'Only this namespace' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -s o -l output -d 'Output format' -r -f -a "yaml\t''
json\t''"
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand state" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l app -d 'An Application, NAMESPACE/NAME: it, its children, its plans and outcomes' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l object -d 'One object, KIND/NAMESPACE/NAME (e.g. Deployment/shop/web)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l since -d 'From this seq or time' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l until -d 'Up to this seq or time' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l from -d 'The story from this seq on, reading the log from the nearest checkpoint at or before it instead of from its start (what the checkpoint holds is what the first steps are compared with)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -l json -d 'One JSON object per step instead of text'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -s h -l help -d 'Print help'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand timeline" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l config -d 'The planner settings to try (YAML or JSON); unset: the log\'s own, with this build' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l from -d 'Only plans from this seq on, starting from the nearest checkpoint at or before it instead of folding the log from its start' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l until -d 'Stop after this seq or time' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l json -d 'Write the report as JSON instead of text'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -l all -d 'Print every plan, Application and object affected; the text report otherwise summarizes lists past a screenful (counts per namespace, the first few). JSON always has them all'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand what-if" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l format -d 'Output format' -r -f -a "jsonl\t''"
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l from -d 'From this seq or time' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l until -d 'Up to this seq or time' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l app -d 'Only entries about this Application (NAMESPACE/NAME)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l object -d 'Only entries about this object (KIND/NAMESPACE/NAME)' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l kind -d 'Only these kinds (event, plan, action, outcome, marker); repeat or separate by commas' -r
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -s h -l help -d 'Print help'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand export" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand completions" -l dir -d 'Write the scripts into this directory (created if missing) under the names each shell looks for (`logbook.bash`, `_logbook`, `logbook.fish`): SHELL\'s only, or bash\'s, zsh\'s and fish\'s' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand completions" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand completions" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand completions" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand man" -l dir -d 'The directory to write them into (created if missing); without it, the command\'s own page goes to stdout (`logbook man | man -l -`)' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand man" -l log -d 'The log file' -r -F
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand man" -s q -l quiet -d 'No progress bar (it is drawn only on a terminal anyway)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand man" -s h -l help -d 'Print help'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand man" -s V -l version -d 'Print version'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "verify" -d 'Fold the log and recompute every recorded plan from exactly the prefix it read'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "state" -d 'The world as the controller saw it at a point: Applications, managed objects and pending actions, as a v1 List kubectl can read'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "timeline" -d 'An incident\'s narrative for one Application or object: what was observed (and what changed), what was planned and why, what was applied, by which executor, how it went'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "what-if" -d 'Recompute the history under another configuration (or this build\'s planner) and list, action by action, what would have been done differently'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "export" -d 'Entries as JSON Lines (seq, id, at, kind, keys, body, prev_hash, hash), for jq and notebooks'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "man" -d 'Write the man pages of logbook-replay and of each of its subcommands'
complete -c logbook-replay -n "__fish_logbook_replay_using_subcommand help; and not __fish_seen_subcommand_from verify state timeline what-if export completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
