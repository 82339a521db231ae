//! The command line's own tests: its shape, the flag vocabulary, defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::values::*;
use super::*;
use clap::CommandFactory;
use echokit::echo::datagram_client::{DEFAULT_REPLY_TIMEOUT, DEFAULT_RETRIES};
use echokit::echo::limit::DEFAULT_PER_SOURCE;

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

/// The rows of the table under `heading` in `docs/cli-conventions.md`, each
/// as its cells with the backquotes taken off.
fn convention_table(heading: &str) -> Vec<Vec<String>> {
    let doc = include_str!("../../docs/cli-conventions.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/cli-conventions.md has no `## {heading}`"));
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect()
        })
        .collect()
}

/// Every subcommand's options, as clap has them once built (globals included).
fn each_option() -> Vec<(String, clap::Arg)> {
    let mut cli = Cli::command();
    cli.build();
    cli.get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .flat_map(|sub| {
            sub.get_arguments()
                .filter(|a| !a.is_positional() && a.get_long() != Some("help"))
                .map(|a| (sub.get_name().to_string(), a.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn each_short_flag_means_one_thing_in_every_command() {
    // short -> (long, the commands the table names)
    let table: BTreeMap<String, (String, String)> = convention_table("Short flags")
        .into_iter()
        .map(|row| (row[0].clone(), (row[1].clone(), row[3].clone())))
        .collect();
    let old: BTreeSet<(String, String)> = convention_table("Old spellings")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let mut where_used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut old_used = BTreeSet::new();
    let mut wrong = Vec::new();
    for (command, arg) in each_option() {
        let long = format!(
            "--{}",
            arg.get_long().expect("every option has a long name")
        );
        let entry = table.iter().find(|(_, (l, _))| *l == long);
        match (arg.get_short(), entry) {
            (Some(short), Some((s, _))) if format!("-{short}") == *s => {
                where_used
                    .entry(s.clone())
                    .or_default()
                    .insert(command.clone());
            }
            (Some(short), _) => wrong.push(format!(
                "{command} -{short} is {long}, which the table does not give -{short}"
            )),
            (None, Some((s, _))) => wrong.push(format!(
                "{command} {long} has no short flag; the table gives it {s}"
            )),
            (None, None) => {}
        }
        let visible_short: Vec<char> = arg.get_visible_short_aliases().unwrap_or_default();
        let visible_long: Vec<&str> = arg.get_visible_aliases().unwrap_or_default();
        let hidden = arg
            .get_all_short_aliases()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !visible_short.contains(c))
            .map(|c| format!("-{c}"))
            .chain(
                arg.get_all_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| !visible_long.contains(a))
                    .map(|a| format!("--{a}")),
            )
            .chain(arg.is_hide_set().then(|| long.clone()));
        for spelling in hidden {
            let key = (command.clone(), spelling.clone());
            if old.contains(&key) {
                old_used.insert(key);
            } else {
                wrong.push(format!(
                    "{command} {spelling} is hidden but not among the old spellings"
                ));
            }
        }
    }
    for (short, (long, commands)) in &table {
        let listed: BTreeSet<String> = if commands.contains("(global)") {
            each_option().into_iter().map(|(c, _)| c).collect()
        } else {
            commands.split(", ").map(str::to_string).collect()
        };
        let used = where_used.get(short).cloned().unwrap_or_default();
        if used != listed {
            wrong.push(format!(
                "{short} {long} is in {used:?}, the table says {listed:?}"
            ));
        }
    }
    for gone in old.difference(&old_used) {
        wrong.push(format!(
            "old spelling {gone:?} is in the table, not in the CLI"
        ));
    }
    assert!(
        wrong.is_empty(),
        "docs/cli-conventions.md and the flags disagree:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn global_options_have_their_own_heading_in_every_help() {
    for (command, arg) in each_option() {
        if arg.is_global_set() {
            assert_eq!(
                arg.get_help_heading(),
                Some("Global options"),
                "{command} --{}",
                arg.get_long().unwrap()
            );
        }
    }
}

#[test]
fn app_client_without_an_endpoint_goes_to_the_guides_address() {
    let request = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["echokit", "app-client"], args].concat()).expect("parses");
        let Command::AppClient(a) = cli.command else {
            panic!("not app-client")
        };
        a.request()
            .map(|(e, action, value)| (e.to_string(), action.to_string(), value.to_string()))
    };
    let guide = (
        "tcp://127.0.0.1:65432".to_string(),
        "search".into(),
        "morpheus".into(),
    );
    assert_eq!(request(&["search", "morpheus"]), Ok(guide.clone()));
    assert_eq!(
        request(&["127.0.0.1:65432", "search", "morpheus"]),
        Ok(guide)
    );
    assert_eq!(
        request(&["unix:/tmp/app.sock", "search", "x"]).map(|r| r.0),
        Ok("unix:/tmp/app.sock".to_string())
    );
    assert!(request(&["127.0.0.1:99999", "search", "x"]).is_err());
    // An endpoint and one word: the value is missing, not the endpoint.
    let cut = request(&["127.0.0.1:1", "search"]).unwrap_err();
    assert!(
        cut.contains("is an endpoint: ACTION and VALUE follow it"),
        "{cut}"
    );
    // One argument, or four, is clap's usage error.
    let parse = |args: &[&str]| Cli::try_parse_from([&["echokit", "app-client"], args].concat());
    assert!(parse(&["search"]).is_err());
    assert!(parse(&["a", "b", "c", "d"]).is_err());
}

#[test]
fn help_texts_state_the_real_defaults() {
    // These help texts say the defaults in words, not from the constants.
    assert_eq!(
        echokit::echo::client::DEFAULT_TIMEOUT,
        Duration::from_secs(30)
    );
    assert_eq!(DEFAULT_REPLY_TIMEOUT, Duration::from_secs(1));
    assert_eq!(
        echokit::bench::DEFAULT_STREAM_TIMEOUT,
        Duration::from_secs(10)
    );
    assert_eq!(
        echokit::bench::DEFAULT_DATAGRAM_TIMEOUT,
        Duration::from_secs(1)
    );
    assert_eq!(DEFAULT_RETRIES, 2);
    assert_eq!(DEFAULT_PER_SOURCE, 1000);
    assert_eq!(
        echokit::app::client::DEFAULT_TIMEOUT,
        Duration::from_secs(30)
    );
    assert_eq!(
        echokit::app::server::DEFAULT_HEADER_TIMEOUT,
        Duration::from_secs(10)
    );
    assert_eq!(
        echokit::app::server::DEFAULT_REQUEST_TIMEOUT,
        Duration::from_secs(30)
    );
    assert_eq!(
        echokit::proto::DEFAULT_MAX_CONTENT,
        parse_size("16M").unwrap() as u64
    );
    assert_eq!(
        echokit::proto::DEFAULT_MAX_HEADER,
        parse_header_limit("16K").unwrap()
    );
    assert!(parse_header_limit("64K").is_err());
    assert_eq!(
        echokit::app::conn::DEFAULT_MAX_BUFFERED,
        parse_size("256M").unwrap() as u64
    );
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("soon").is_err());
    assert_eq!(parse_keepalive("60s"), Ok(Duration::from_secs(60)));
    for bad in ["0", "500ms", "1e19", "1.5"] {
        assert!(parse_keepalive(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("256K"), Ok(256 << 10));
    assert_eq!(parse_size("4MiB"), Ok(4 << 20));
    assert!(parse_size("4 parsecs").is_err());
    assert!(parse_timeout("0s").is_err());
    assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_mode("0600"), Ok(0o600));
    assert_eq!(parse_mode("660"), Ok(0o660));
    assert!(parse_mode("0800").is_err());
    assert!(parse_mode("01777").is_err());
    assert_eq!(
        parse_metrics_addr("127.0.0.1:9100").map(|hp| hp.to_string()),
        Ok("127.0.0.1:9100".to_string())
    );
    assert!(parse_metrics_addr("tcp://[::1]:0").is_ok());
    assert!(parse_metrics_addr(":9100").is_ok());
    let udp = parse_metrics_addr("udp://127.0.0.1:9100").unwrap_err();
    assert!(udp.contains("over TCP"), "{udp}");
    assert!(parse_metrics_addr("unix:/tmp/m.sock").is_err());
}
