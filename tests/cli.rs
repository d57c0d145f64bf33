//! The command line as a new user meets it, through the real binary: flags on either side of
//! the subcommand, forgiving addresses and switches, `--check` reporting every problem a start
//! would hit, the start-up line, and the man page.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_deepchat-proxy");
/// A generous deadline for a command that should exit at once.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs the binary with exactly these arguments and variables (nothing inherited, so the
/// developer's own DEEPCHAT_PROXY_* or API keys cannot change the outcome), killed at the deadline.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read both pipes while waiting: a long page (man) would otherwise fill a pipe and stall.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `--check` must fail with exit 2 and an `error:` line containing each of `expected`.
fn assert_check_fails(args: &[&str], env: &[(&str, &str)], expected: &[&str]) -> String {
    let mut all = vec!["--check"];
    all.extend_from_slice(args);
    let output = run(&all, env);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    for needle in expected {
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(needle)),
            "{args:?}: no error line with {needle:?} in:\n{err}"
        );
    }
    err
}

fn assert_check_passes(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--check"];
    all.extend_from_slice(args);
    let output = run(&all, env);
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let out = assert_check_passes(&["demo", "--listen", "127.0.0.1:9000"], &[]);
    assert!(out.contains("listen 127.0.0.1:9000"), "{out}");
    let out = assert_check_passes(
        &[
            "openai",
            "--model",
            "x",
            "--system-prompt",
            "hi",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--rate-limit",
            "7",
        ],
        &[],
    );
    assert!(out.contains("--rate-limit=7"), "{out}");
}

#[test]
fn listen_accepts_localhost_and_a_bare_port() {
    let out = assert_check_passes(&["--listen", "localhost:8181", "demo"], &[]);
    assert!(out.contains("listen 127.0.0.1:8181"), "{out}");
    let out = assert_check_passes(&["--listen", ":8182", "demo"], &[]);
    assert!(out.contains("listen 0.0.0.0:8182"), "{out}");
    let out = assert_check_passes(&["--listen", "[::1]:8183", "demo"], &[]);
    assert!(out.contains("listen [::1]:8183"), "{out}");
    for bad in ["8080", "example.com:8080", "localhost:http"] {
        let output = run(&["--check", "--listen", bad, "demo"], &[]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&output).contains("write IP:PORT"),
            "{bad}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn boolean_variables_accept_what_people_write() {
    for value in ["1", "0", "yes", "no", "true", "false", "on", "off", "TRUE"] {
        assert_check_passes(&["demo"], &[("DEEPCHAT_PROXY_LOG_CONTENT", value)]);
        assert_check_passes(&["demo"], &[("DEEPCHAT_PROXY_UPSTREAM_HTTP2", value)]);
        assert_check_passes(&["demo"], &[("DEEPCHAT_PROXY_PLAYGROUND", value)]);
    }
    let output = run(&["demo"], &[("DEEPCHAT_PROXY_CHECK", "yes")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("configuration OK"));
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable() {
    let output = run(
        &["--check", "demo"],
        &[("DEEPCHAT_PROXY_LOG_CONTENT", "maybe")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: ")
            && stderr(&output).contains("DEEPCHAT_PROXY_LOG_CONTENT"),
        "{}",
        stderr(&output)
    );
    let output = run(
        &["--check", "demo"],
        &[("DEEPCHAT_PROXY_LISTEN", "nowhere")],
    );
    assert!(
        stderr(&output).contains("DEEPCHAT_PROXY_LISTEN"),
        "{}",
        stderr(&output)
    );
    // Values the configuration refuses (not clap) name their variable too.
    let err = assert_check_fails(
        &["demo"],
        &[("DEEPCHAT_PROXY_ALLOW_ORIGIN", "https://ok.test,nope")],
        &["--allow-origin \"nope\""],
    );
    assert!(
        err.contains("(set by DEEPCHAT_PROXY_ALLOW_ORIGIN)"),
        "{err}"
    );
    // On the command line, the flag is what to fix.
    let output = run(&["--check", "--listen", "nowhere", "demo"], &[]);
    assert!(!stderr(&output).contains("DEEPCHAT_PROXY_LISTEN"));
    assert!(stderr(&output).contains("--listen"));
}

#[test]
fn check_refuses_what_a_start_would_trip_over() {
    let loopback = ["--base-url", "http://127.0.0.1:1/v1", "--model", "m"];
    let openai = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = extra.to_vec();
        args.push("openai");
        args.extend_from_slice(&loopback);
        args
    };
    assert_check_fails(
        &openai(&["--allow-origin", "notanorigin"]),
        &[],
        &["--allow-origin \"notanorigin\": not an origin"],
    );
    assert_check_fails(
        &openai(&["--allow-origin", "https://app.*.example.com"]),
        &[],
        &["a wildcard may only be the first label"],
    );
    assert_check_fails(
        &openai(&[
            "--listen",
            "127.0.0.1:8090",
            "--metrics-listen",
            "127.0.0.1:8090",
        ]),
        &[],
        &["--metrics-listen 127.0.0.1:8090 is the --listen address too"],
    );
    assert_check_fails(
        &openai(&["--listen", "0.0.0.0:8090", "--metrics-listen", ":8090"]),
        &[],
        &["--metrics-listen"],
    );
    assert_check_fails(
        &["demo", "--path", "/"],
        &[],
        &["--path \"/\" clashes with the page"],
    );
    assert_check_fails(
        &[
            "openai",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--model",
            "",
        ],
        &[],
        &["--model is empty"],
    );
    assert_check_fails(
        &[
            "openai",
            "--preset",
            "groq",
            "--base-url",
            "https://api.groq.com/openai/v1/chat/completions",
            "--model",
            "m",
        ],
        &[("GROQ_API_KEY", "k")],
        &["use --base-url https://api.groq.com/openai/v1"],
    );
    assert_check_fails(
        &[
            "anthropic",
            "--base-url",
            "https://api.anthropic.com/v1",
            "--model",
            "m",
        ],
        &[("ANTHROPIC_API_KEY", "k")],
        &["already ends in \"/v1\""],
    );
    assert_check_fails(
        &["anthropic", "--model", "claude"],
        &[],
        &["ANTHROPIC_API_KEY is unset or empty, but anthropic needs an API key"],
    );
    assert_check_fails(
        &["openai", "--preset", "groq", "--model", "m"],
        &[],
        &["GROQ_API_KEY is unset"],
    );
    assert_check_fails(
        &[
            "demo",
            "--deep-chat-script",
            "/nonexistent/deepChat.bundle.js",
        ],
        &[],
        &["--deep-chat-script /nonexistent/deepChat.bundle.js"],
    );
}

#[test]
fn check_lists_every_problem_at_once() {
    let err = assert_check_fails(
        &[
            "--allow-origin",
            "notanorigin",
            "--listen",
            "127.0.0.1:8095",
            "--metrics-listen",
            "127.0.0.1:8095",
            "--playground",
            "--path",
            "/",
            "openai",
            "--model",
            "",
            "--base-url",
            "https://api.example.test/v1/chat/completions",
        ],
        &[],
        &[
            "notanorigin",
            "--metrics-listen",
            "--path",
            "--model",
            "--base-url",
        ],
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        5,
        "{err}"
    );
}

#[test]
fn check_accepts_what_needs_no_key_and_wildcard_subdomains() {
    // A local server at a loopback URL, a keyless preset, and ollama need no key.
    assert_check_passes(
        &[
            "openai",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--model",
            "m",
        ],
        &[],
    );
    assert_check_passes(&["openai", "--preset", "vllm", "--model", "m"], &[]);
    // Plain http off loopback: a self-hosted server (hosted APIs are https).
    assert_check_passes(
        &[
            "openai",
            "--base-url",
            "http://vllm.internal:8000/v1",
            "--model",
            "m",
        ],
        &[],
    );
    assert_check_passes(&["ollama", "--model", "llama3.2"], &[]);
    // A gateway header carries the credentials instead.
    assert_check_passes(
        &[
            "openai",
            "--model",
            "m",
            "--header",
            "Authorization: Bearer gateway",
        ],
        &[],
    );
    let out = assert_check_passes(&["--allow-origin", "https://*.example.com", "demo"], &[]);
    assert!(out.contains("origins: https://*.example.com"), "{out}");
}

#[test]
fn header_can_come_from_the_environment() {
    assert_check_passes(
        &[
            "openai",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--model",
            "m",
        ],
        &[("DEEPCHAT_PROXY_HEADER", "X-Team: blue\nX-Env: test")],
    );
    assert_check_fails(
        &[
            "openai",
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--model",
            "m",
        ],
        &[("DEEPCHAT_PROXY_HEADER", "X-Team: blue\nno colon")],
        &["--header \"no colon\""],
    );
}

/// A start warns about an unset key and prints one line saying what runs, without secrets.
#[test]
fn start_prints_the_effective_configuration_and_warnings() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--allow-origin",
            "https://app.example.com",
            "--auth-token-env",
            "DEEPCHAT_PROXY_TEST_TOKENS",
            "--rate-limit",
            "60",
            "anthropic",
            "--model",
            "claude-x",
            "--base-url",
            "https://anthropic.example.test",
        ])
        .env_clear()
        .env("DEEPCHAT_PROXY_TEST_TOKENS", "client-secret-token")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let (lines, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("listening on") {
                break;
            }
        }
        let _ = lines.send(text);
    });
    let text = done.recv_timeout(DEADLINE);
    let _ = child.kill();
    let _ = child.wait();
    let text = text.expect("start-up line within the deadline");
    let warning = text
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(warning.contains("ANTHROPIC_API_KEY is unset"), "{warning}");
    let line = text
        .lines()
        .find(|l| l.contains("listening on"))
        .expect("start-up line");
    for part in [
        "provider anthropic",
        "model claude-x",
        "upstream anthropic.example.test",
        "origins: https://app.example.com",
        "auth: bearer tokens from $DEEPCHAT_PROXY_TEST_TOKENS",
        "metrics: on the main listener",
        "--rate-limit=60",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert!(!text.contains("client-secret-token"), "{text}");
}

#[test]
fn man_page_lists_variables_and_no_missing_pages() {
    let output = run(&["man"], &[]);
    assert!(output.status.success());
    let page = stdout(&output);
    assert!(page.contains(".SH ENVIRONMENT"));
    assert!(page.contains("DEEPCHAT_PROXY_API_KEY_FILE"));
    assert!(!page.contains("(1)"), "a reference to another page: {page}");
    let output = run(&["completions", "bash"], &[]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("--listen"));
}

#[test]
fn every_provider_reads_its_key_rules_from_the_provider_table() {
    for provider in deepchat_adapters::providers::PROVIDERS {
        let mut args = vec![provider.name, "--model", "m"];
        if provider.default_base_url.is_none() {
            args.extend_from_slice(&["--base-url", "https://example.invalid"]);
        }
        // A hosted (https, off loopback) default: its conventional variable unset is an error.
        if let (Some(variable), Some(base)) = (provider.default_key_env, provider.default_base_url)
        {
            if base.starts_with("https://") {
                assert_check_fails(&args, &[], &[variable, provider.name]);
            }
        }
        // The provider's own key header in --header stands in for the key.
        let header = format!("{}: from-a-gateway", provider.key_header);
        let mut with_header = args.clone();
        with_header.extend_from_slice(&["--header", &header]);
        assert_check_passes(&with_header, &[]);
        // A variable the operator named is expected to be set, even for a local server.
        let mut named = vec![
            provider.name,
            "--model",
            "m",
            "--base-url",
            "http://127.0.0.1:1",
        ];
        named.extend_from_slice(&["--api-key-env", "NAMED_BUT_UNSET"]);
        assert_check_fails(&named, &[], &["NAMED_BUT_UNSET is unset"]);
        named.truncate(5);
        assert_check_passes(&named, &[]);
    }
}

/// The words of a one-command shell line: blanks split, double quotes group (all the README's
/// examples need).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The README's two-provider example, as pasted (with its `export`ed keys set to stand-ins):
/// `--check` accepts it and shows every route with its chain and models.
#[test]
fn the_readme_routes_example_passes_check_and_shows_every_route() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("--route "))
        .expect("a sh block with --route in README.md");
    let command = block
        .lines()
        .filter(|line| !line.starts_with("export "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let words = shell_words(&command);
    assert_eq!(words[0], "deepchat-proxy", "{command}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let keys = [
        ("OPENAI_API_KEY", "sk-stand-in"),
        ("ANTHROPIC_API_KEY", "sk-ant-stand-in"),
    ];
    let out = assert_check_passes(&args, &keys);
    for part in [
        "provider openai, model gpt-4o-mini, upstream api.openai.com, falling back to anthropic, model claude-haiku-4-5",
        "(client may choose: fast=gpt-4o-mini, gpt-4o)",
        "path /chat",
        "route /support: provider anthropic, model claude-sonnet-4-5, upstream api.anthropic.com, falling back to openai, model gpt-4o",
    ] {
        assert!(out.contains(part), "{part:?} missing from {out}");
    }
    assert!(!out.contains("stand-in"), "no key in the output: {out}");

    // The same setup as a --config file, as the README shows it.
    let file_text = readme
        .split("```text\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("--route "))
        .expect("a text block with the config file in README.md");
    let file =
        std::env::temp_dir().join(format!("deepchat-proxy-readme-{}.conf", std::process::id()));
    std::fs::write(&file, file_text).expect("write the config file");
    let path = file.to_string_lossy().into_owned();
    let from_file = assert_check_passes(&["--config", &path], &keys);
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        from_file, out,
        "the README's config file is its command line"
    );
}

#[test]
fn route_and_fallback_problems_name_their_section() {
    let keys = [("OPENAI_API_KEY", "sk-x")];
    let output = run(
        &["--check", "demo", "--route", "/x", "--listen", ":1", "demo"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("in --route /x: --listen applies to the whole proxy"),
        "{err}"
    );
    let output = run(
        &["--check", "openai", "--model", "m", "--fallback", "nope"],
        &keys,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(
            "in --fallback nope (in the first section): --fallback must be followed by a provider"
        ),
        "{}",
        stderr(&output)
    );
    assert_check_fails(
        &[
            "openai",
            "--model",
            "m",
            "--route",
            "/x",
            "--stop-key",
            "z",
            "openai",
            "--model",
            " ",
            "--fallback",
            "openai",
            "--model",
            "m",
            "--base-url",
            "ftp://x",
        ],
        &keys,
        &[
            "in --route /x: --stop-key must be at least 2 characters",
            "in --route /x: --model is empty",
            "in --route /x: in --fallback openai: --base-url \"ftp://x\" must start with http",
        ],
    );
    assert_check_fails(
        &["openai", "--model", "m", "--route", "/chat", "demo"],
        &keys,
        &["--route /chat is served twice"],
    );
    assert_check_fails(
        &["--allow-model", "=x", "openai", "--model", "m"],
        &keys,
        &["--allow-model \"=x\" is not NAME or ALIAS=NAME"],
    );
    assert_check_fails(
        &["demo", "--fallback", "demo"],
        &keys,
        &["demo cannot be part of a fallback chain"],
    );
}

#[test]
fn help_explains_routes_and_fallbacks() {
    let output = run(&["--help"], &[]);
    let out = stdout(&output);
    assert!(out.contains("--route PATH"), "{out}");
    assert!(out.contains("--fallback PROVIDER"), "{out}");
    assert!(out.contains("--allow-model"), "{out}");
}

/// `--config FILE` holds the same flags as the command line, so it checks the same.
#[test]
fn a_config_file_stands_for_the_flags_it_holds() {
    let flags = [
        "--allow-model",
        "fast=gpt-4o-mini",
        "openai",
        "--model",
        "gpt-4o-mini",
        "--route",
        "/support",
        "--system-prompt",
        "You answer questions about our product.",
        "anthropic",
        "--model",
        "claude-sonnet-4-5",
    ];
    let keys = [
        ("OPENAI_API_KEY", "sk-stand-in"),
        ("ANTHROPIC_API_KEY", "sk-ant-stand-in"),
    ];
    let from_flags = assert_check_passes(&flags, &keys);
    let file =
        std::env::temp_dir().join(format!("deepchat-proxy-config-{}.txt", std::process::id()));
    std::fs::write(
        &file,
        "# the first route\n--allow-model fast=gpt-4o-mini\nopenai --model gpt-4o-mini\n\n\
         --route /support   # a second one\n  --system-prompt \"You answer questions about our product.\"\n  \
         anthropic --model claude-sonnet-4-5\n",
    )
    .expect("write the config file");
    let path = file.to_string_lossy().into_owned();
    let from_file = assert_check_passes(&["--config", &path], &keys);
    let bad = run(
        &["--check", "--config", "/nonexistent/deepchat-proxy.conf"],
        &keys,
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(from_file, from_flags);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--config /nonexistent/deepchat-proxy.conf:"),
        "{}",
        stderr(&bad)
    );
}
