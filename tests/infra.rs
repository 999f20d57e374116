//! What `infra/` ships, checked without Azure: the ARM template's references resolve, its app
//! settings are exactly the ones the binary reads, its security settings hold, and the deploy
//! script runs end to end (dry run, and a real run against a recording stand-in for `az`).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn template() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/infra/azuredeploy.json")).unwrap()).unwrap()
}

/// Every ARM expression string (`[...]`, not the `[[` escape) anywhere in the document.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with('[') && !s.starts_with("[[") && s.ends_with(']') => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| expressions(x, out)),
        Value::Object(o) => o.values().for_each(|x| expressions(x, out)),
        _ => {}
    }
}

/// Names used as `fname('name')` in an expression.
fn references(expr: &str, fname: &str) -> Vec<String> {
    let pat = format!("{fname}('");
    expr.match_indices(&pat).filter_map(|(i, _)| expr[i + pat.len()..].split('\'').next().map(str::to_string)).collect()
}

fn function_app(t: &Value) -> &Value {
    t["resources"].as_array().unwrap().iter().find(|r| r["type"] == "Microsoft.Web/sites").expect("a Function App")
}

#[test]
fn every_parameter_and_variable_reference_resolves() {
    let t = template();
    let params = t["parameters"].as_object().unwrap();
    let vars = t["variables"].as_object().unwrap();
    let mut exprs = Vec::new();
    expressions(&t, &mut exprs);
    assert!(exprs.len() > 20);
    for e in &exprs {
        assert_eq!(e.matches('(').count(), e.matches(')').count(), "unbalanced: {e}");
        for p in references(e, "parameters") {
            assert!(params.contains_key(&p), "undeclared parameter {p} in {e}");
        }
        for v in references(e, "variables") {
            assert!(vars.contains_key(&v), "undeclared variable {v} in {e}");
        }
    }
    let used: String = exprs.concat();
    for p in params.keys() {
        assert!(used.contains(&format!("parameters('{p}')")), "parameter {p} is never used");
    }
    for (name, p) in params {
        if p["type"].as_str().unwrap().eq_ignore_ascii_case("securestring") {
            assert!(p.get("defaultValue").is_none(), "secret {name} must not have a default");
        }
    }
}

#[test]
fn app_settings_are_exactly_what_the_binary_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_handler")).args(["settings", "--names"]).output().unwrap();
    assert!(out.status.success());
    let mut expected: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|n| !matches!(*n, "LEADS_INGEST_KEY" | "FUNCTIONS_CUSTOMHANDLER_PORT"))
        .map(str::to_string)
        .collect();
    for platform in [
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_WORKER_RUNTIME",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
    ] {
        expected.insert(platform.to_string());
    }
    let t = template();
    let settings = function_app(&t)["properties"]["siteConfig"]["appSettings"].as_array().unwrap();
    let actual: BTreeSet<String> = settings.iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(actual, expected);
    assert_eq!(settings.len(), actual.len(), "no setting twice");
    let value = |n: &str| settings.iter().find(|s| s["name"] == n).unwrap()["value"].as_str().unwrap().to_string();
    assert_eq!(value("FUNCTIONS_WORKER_RUNTIME"), "custom");
    assert_eq!(value("FUNCTIONS_EXTENSION_VERSION"), "~4");
    for secret in ["SMTP_PASSWORD", "NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_SECRET", "NOTIFY_TEAMS_URL", "NOTIFY_SLACK_URL", "LEADS_STORAGE"]
    {
        assert!(value(secret).contains("@Microsoft.KeyVault("), "{secret} must be a Key Vault reference");
    }
}

#[test]
fn security_settings_hold() {
    let t = template();
    let resources = t["resources"].as_array().unwrap();
    let storage = resources.iter().find(|r| r["type"] == "Microsoft.Storage/storageAccounts").unwrap();
    assert_eq!(storage["properties"]["supportsHttpsTrafficOnly"], true);
    assert_eq!(storage["properties"]["minimumTlsVersion"], "TLS1_2");
    assert_eq!(storage["properties"]["allowBlobPublicAccess"], false);
    let app = function_app(&t);
    assert_eq!(app["kind"], "functionapp,linux");
    assert_eq!(app["properties"]["httpsOnly"], true);
    assert_eq!(app["properties"]["siteConfig"]["minTlsVersion"], "1.2");
    assert_eq!(app["properties"]["siteConfig"]["ftpsState"], "Disabled");
    assert_eq!(app["identity"]["type"], "SystemAssigned");
    let plan = resources.iter().find(|r| r["type"] == "Microsoft.Web/serverfarms").unwrap();
    assert_eq!((plan["sku"]["name"].as_str(), plan["properties"]["reserved"].as_bool()), (Some("Y1"), Some(true)));
    let vault = resources.iter().find(|r| r["type"] == "Microsoft.KeyVault/vaults").unwrap();
    assert_eq!(vault["properties"]["enableRbacAuthorization"], true);
    let role = resources.iter().find(|r| r["type"] == "Microsoft.Authorization/roleAssignments").unwrap();
    assert!(role["properties"]["roleDefinitionId"].as_str().unwrap().contains("keyVaultSecretsUserRole"));
    assert!(resources.iter().any(|r| r["type"] == "Microsoft.Storage/storageAccounts/tableServices/tables"));
}

#[test]
fn parameters_sample_only_sets_declared_parameters() {
    let t = template();
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/infra/azuredeploy.parameters.sample.json")).unwrap()).unwrap();
    for name in sample["parameters"].as_object().unwrap().keys() {
        assert!(t["parameters"].get(name).is_some(), "{name} is not a template parameter");
    }
    // Secure parameters have no default, so the sample must give each one (empty = off).
    for (name, p) in t["parameters"].as_object().unwrap() {
        if p["type"] == "securestring" {
            assert!(sample["parameters"].get(name).is_some(), "sample lacks secret {name}");
        }
    }
}

#[test]
fn deploy_dry_run_needs_no_azure() {
    let out = Command::new("bash")
        .args([&format!("{ROOT}/infra/deploy.sh"), "--what-if", "--resource-group", "rg-test", "--skip-build"])
        .env("AZ", "/nonexistent/az")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for expected in ["az group create", "az deployment group create", "config-zip", "LeadIngest", "would package"] {
        assert!(stdout.contains(expected), "dry run lacks `{expected}`: {stdout}");
    }
    let out = Command::new("bash").args([&format!("{ROOT}/infra/deploy.sh"), "--what-if"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--resource-group"));
}

/// A stand-in for the Azure CLI that records its arguments and answers the two queries the
/// script reads.
const FAKE_AZ: &str = r#"#!/usr/bin/env bash
echo "$*" >> "$AZ_LOG"
case "$*" in
  *"deployment group show"*functionAppName*) echo leads-app ;;
  *"deployment group show"*defaultHostName*) echo leads-app.azurewebsites.net ;;
  *"function keys list"*) echo the-function-key ;;
esac
"#;

#[test]
fn deploy_packages_the_app_and_prints_the_partner_center_url_twice_alike() {
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    std::fs::write(&az, FAKE_AZ).unwrap();
    let log = dir.path().join("az.log");
    let zip = dir.path().join("package.zip");
    let run = || {
        Command::new("bash")
            .args([&format!("{ROOT}/infra/deploy.sh"), "--resource-group", "rg-leads", "--skip-build"])
            .env("AZ", &az)
            .env("AZ_LOG", &log)
            .env("HANDLER_BINARY", env!("CARGO_BIN_EXE_handler"))
            .env("PACKAGE_PATH", &zip)
            .output()
            .unwrap()
    };
    // The stand-in must be executable to be called as `$AZ`.
    Command::new("chmod").arg("+x").arg(&az).status().unwrap();
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("https://leads-app.azurewebsites.net/api/LeadIngest?code=the-function-key"), "{stdout}");
    let calls_once = std::fs::read_to_string(&log).unwrap();
    assert!(calls_once.contains("deployment group create --resource-group rg-leads"));
    assert!(calls_once.contains("functionapp deployment source config-zip --resource-group rg-leads --name leads-app"));

    // The package: handler (executable) at the root, host.json and both function folders.
    let listing = Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); [print(i.filename, oct(i.external_attr >> 16)) for i in z.infolist()]",
        ])
        .arg(&zip)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("handler 0o100755"), "{listing}");
    for f in ["host.json", "LeadIngest/function.json", "LeadNotify/function.json"] {
        assert!(listing.contains(f), "{listing}");
    }

    // Idempotent: the second run makes the same calls.
    std::fs::remove_file(&log).unwrap();
    let second = run();
    assert!(second.status.success());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), calls_once);
}
