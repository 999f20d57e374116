//! The public contract stays written down: every setting the binary reads is in the README's
//! settings table and in `local.settings.json.sample`, and the function definitions match what
//! the handler serves.

use marketplace_leads::settings::definition::ALL as SETTINGS;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

#[test]
fn readme_documents_every_setting_with_its_default() {
    let readme = read("README.md");
    for s in SETTINGS {
        let row = format!("| `{}` | ", s.name);
        let Some(at) = readme.find(&row) else { panic!("README settings table lacks {}", s.name) };
        let default_column = readme[at + row.len()..].split(" |").next().unwrap_or_default();
        if s.default.is_empty() {
            assert!(!default_column.starts_with('`'), "README gives {} a default the code does not have: {default_column}", s.name);
        } else {
            assert!(
                default_column.starts_with(&format!("`{}`", s.default)),
                "README's default of {} is `{default_column}`, the code's is `{}`",
                s.name,
                s.default
            );
        }
    }
}

#[test]
fn local_settings_sample_has_every_app_setting() {
    let sample = json("local.settings.json.sample");
    let values = sample["Values"].as_object().unwrap();
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    // Not app settings of a local run: serve's keys, the port the host picks, what App Service
    // injects itself, and SSL_CERT_FILE (set empty there, it would also reach the host's own TLS).
    let not_app_settings = ["LEADS_INGEST_KEY", "INBOX_KEY", "FUNCTIONS_CUSTOMHANDLER_PORT", "WEBSITE_AUTH_ENABLED", "SSL_CERT_FILE"];
    for s in SETTINGS.iter().filter(|s| !not_app_settings.contains(&s.name)) {
        assert!(values.contains_key(s.name), "local.settings.json.sample lacks {}", s.name);
    }
}

#[test]
fn function_definitions_match_the_handler() {
    let host = json("host.json");
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], "handler");
    assert_eq!(host["customHandler"]["enableProxyingHttpRequest"], true);
    assert_eq!(host["extensionBundle"]["id"], "Microsoft.Azure.Functions.ExtensionBundle");

    let ingest = json("LeadIngest/function.json");
    let bindings = ingest["bindings"].as_array().unwrap();
    // Proxying only applies to a function with exactly one httpTrigger in and one http out.
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0]["type"], "httpTrigger");
    assert_eq!(bindings[0]["authLevel"], "function");
    assert_eq!(bindings[0]["methods"], serde_json::json!(["post"]));
    assert_eq!(bindings[0]["name"], "req");
    assert_eq!(bindings[1]["type"], "http");
    assert_eq!(bindings[1]["name"], "res");

    // The inbox: proxied too (one httpTrigger in, one http out), signed in by App Service
    // authentication rather than a function key (a key would have to travel in every link).
    let inbox = json("Inbox/function.json");
    let bindings = inbox["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0]["type"], "httpTrigger");
    assert_eq!(bindings[0]["authLevel"], "anonymous");
    assert_eq!(bindings[0]["route"], "Inbox/{*path}");
    assert_eq!(bindings[1]["type"], "http");

    let notify = json("LeadNotify/function.json");
    assert_eq!(notify["bindings"][0]["type"], "timerTrigger");
    assert_eq!(notify["bindings"][0]["schedule"], "%NOTIFY_SCHEDULE%");
}
