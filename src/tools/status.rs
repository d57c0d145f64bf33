//! The line the chat shows while tools run: the tools' names, and their arguments only with
//! `--show-tool-calls` (they are the model's words and may hold what the user should not see
//! verbatim), cut short so a status never floods the window.

use deepchat_adapters::ToolCall;

/// Most characters of one call's arguments shown with `--show-tool-calls`.
const MAX_SHOWN_ARGUMENTS: usize = 200;

/// "Running echo…", "Running echo and get-sum…", with arguments when `show_arguments`.
pub fn line(calls: &[ToolCall], show_arguments: bool) -> String {
    let names: Vec<String> = calls
        .iter()
        .map(|call| {
            if !show_arguments {
                return call.name.clone();
            }
            let mut arguments: String = call.arguments.chars().take(MAX_SHOWN_ARGUMENTS).collect();
            if arguments.len() < call.arguments.len() {
                arguments.push('…');
            }
            format!("{}({arguments})", call.name)
        })
        .collect();
    let listed = match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    format!("Running {listed}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
            signature: None,
        }
    }

    #[test]
    fn names_only_unless_arguments_are_asked_for() {
        let calls = [
            call("echo", r#"{"message":"secret"}"#),
            call("get-sum", "{}"),
        ];
        assert_eq!(line(&calls, false), "Running echo and get-sum…");
        assert_eq!(
            line(&calls[..1], true),
            r#"Running echo({"message":"secret"})…"#
        );
        let long = call("echo", &"x".repeat(500));
        assert!(line(&[long], true).chars().count() < 230);
    }
}
