//! What `infra/` ships, checked without Azure: the ARM template's references resolve, it is a
//! Flex Consumption app with a custom-handler runtime, its app settings are the ones the binary
//! reads (identity-based storage, no account key anywhere), the identity's role assignments exist
//! before the app, the alerts exist, and the deploy script runs end to end (dry runs with every
//! option, and a real run against a recording stand-in for `az`) without bash-4-only constructs.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const BLOB_DATA_OWNER: &str = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
const TABLE_DATA_CONTRIBUTOR: &str = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3";
const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
const TABLE_DATA_READER: &str = "76199698-9eea-4c19-bc75-cec21354c6b6";
const MONITORING_METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";

const IDENTITY: &str = "resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identityName'))";

fn template_text() -> String {
    std::fs::read_to_string(format!("{ROOT}/infra/azuredeploy.json")).unwrap()
}

fn template() -> Value {
    serde_json::from_str(&template_text()).unwrap()
}

/// Every ARM expression string (`[...]`, not the `[[` escape) anywhere in the document.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with('[') && !s.starts_with("[[") && s.ends_with(']') => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| expressions(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                // Object keys can be expressions too (userAssignedIdentities).
                if k.starts_with('[') && !k.starts_with("[[") && k.ends_with(']') {
                    out.push(k.clone());
                }
                expressions(x, out);
            }
        }
        _ => {}
    }
}

/// Names used as `fname('name')` in an expression.
fn references(expr: &str, fname: &str) -> Vec<String> {
    let pat = format!("{fname}('");
    expr.match_indices(&pat).filter_map(|(i, _)| expr[i + pat.len()..].split('\'').next().map(str::to_string)).collect()
}

fn resources(t: &Value) -> &Vec<Value> {
    t["resources"].as_array().unwrap()
}

fn resource<'a>(t: &'a Value, kind: &str) -> &'a Value {
    resources(t).iter().find(|r| r["type"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

fn all_of<'a>(t: &'a Value, kind: &str) -> Vec<&'a Value> {
    resources(t).iter().filter(|r| r["type"] == kind).collect()
}

fn function_app(t: &Value) -> &Value {
    resource(t, "Microsoft.Web/sites")
}

fn app_settings(t: &Value) -> &Vec<Value> {
    function_app(t)["properties"]["siteConfig"]["appSettings"].as_array().unwrap()
}

fn setting(t: &Value, name: &str) -> String {
    let s = app_settings(t).iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no app setting {name}"));
    s["value"].as_str().unwrap().to_string()
}

#[test]
fn every_parameter_and_variable_reference_resolves() {
    let t = template();
    let params = t["parameters"].as_object().unwrap();
    let vars = t["variables"].as_object().unwrap();
    let mut exprs = Vec::new();
    expressions(&t, &mut exprs);
    assert!(exprs.len() > 40);
    for e in &exprs {
        assert_eq!(e.matches('(').count(), e.matches(')').count(), "unbalanced: {e}");
        assert_eq!(e.matches('\'').count() % 2, 0, "unbalanced quotes: {e}");
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
    for v in vars.keys() {
        assert!(used.contains(&format!("variables('{v}')")), "variable {v} is never used");
    }
    for (name, p) in params {
        // A blank default: without a parameters file the Azure CLI neither prompts for a secret
        // nor fails for want of a terminal; an empty secret turns its channel off.
        if p["type"].as_str().unwrap().eq_ignore_ascii_case("securestring") {
            assert_eq!(p["defaultValue"], "", "secret {name} must default to empty");
        }
        assert!(p["metadata"]["description"].as_str().is_some_and(|d| !d.is_empty()), "{name} has no description");
    }
}

#[test]
fn flex_consumption_plan_with_the_custom_handler_runtime() {
    let t = template();
    let plan = resource(&t, "Microsoft.Web/serverfarms");
    assert_eq!(plan["sku"]["name"], "FC1");
    assert_eq!(plan["sku"]["tier"], "FlexConsumption");
    assert_eq!(plan["properties"]["reserved"], true);
    assert!(!template_text().contains("\"Y1\"") && !template_text().contains("\"Dynamic\""), "no Linux Consumption plan");

    let app = function_app(&t);
    assert_eq!(app["kind"], "functionapp,linux");
    let config = &app["properties"]["functionAppConfig"];
    assert_eq!(config["runtime"]["name"], "custom");
    assert_eq!(config["runtime"]["version"], "1.0");
    assert_eq!(config["scaleAndConcurrency"]["maximumInstanceCount"], "[parameters('maximumInstanceCount')]");
    let max = &t["parameters"]["maximumInstanceCount"];
    assert_eq!(max["type"], "int");
    // Microsoft's Flex templates: @minValue(40) @maxValue(1000).
    assert_eq!((max["minValue"].as_i64(), max["maxValue"].as_i64(), max["defaultValue"].as_i64()), (Some(40), Some(1000), Some(40)));

    // The package lives in a blob container of the app's account, reached with the identity.
    let storage = &config["deployment"]["storage"];
    assert_eq!(storage["type"], "blobContainer");
    let value = storage["value"].as_str().unwrap();
    assert!(value.contains("primaryEndpoints.blob") && value.contains("variables('deploymentContainer')"), "{value}");
    assert_eq!(storage["authentication"]["type"], "UserAssignedIdentity");
    assert_eq!(storage["authentication"]["userAssignedIdentityResourceId"], format!("[{IDENTITY}]"));
    let container = resource(&t, "Microsoft.Storage/storageAccounts/blobServices/containers");
    assert!(container["name"].as_str().unwrap().contains("variables('deploymentContainer')"));
    assert_eq!(container["properties"]["publicAccess"], "None");

    // One user-assigned identity, also the one that resolves Key Vault references.
    assert_eq!(app["identity"]["type"], "UserAssigned");
    let ids: Vec<&String> = app["identity"]["userAssignedIdentities"].as_object().unwrap().keys().collect();
    assert_eq!(ids, [&format!("[{IDENTITY}]")]);
    assert_eq!(app["properties"]["keyVaultReferenceIdentity"], format!("[{IDENTITY}]"));
    assert!(resources(&t).iter().any(|r| r["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"));
}

/// The smallest instance Flex Consumption offers (512, 2048 or 4096 MB): on-demand execution is
/// billed by the configured instance memory, and the handler's measured peak (`./scripts/bench
/// cost`, BENCHMARKS.md "Cost model": 84 MiB for a 1,000-row backlog over a 20,000-row sweep) is
/// a sixth of it.
#[test]
fn instances_are_the_smallest_flex_offers() {
    let t = template();
    let memory = &function_app(&t)["properties"]["functionAppConfig"]["scaleAndConcurrency"]["instanceMemoryMB"];
    assert_eq!(memory, 512, "instanceMemoryMB: see BENCHMARKS.md, Cost model");
}

#[test]
fn app_settings_are_what_the_binary_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_handler")).args(["settings", "--names"]).output().unwrap();
    assert!(out.status.success());
    let binary: BTreeSet<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    // Read by the platform, not by the binary.
    // App Service authentication's: the identity that signs its client assertion, the tenants it lets in.
    let app_service_auth = ["OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID", "WEBSITE_AUTH_AAD_ALLOWED_TENANTS"];
    let platform: BTreeSet<String> = ["APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        .into_iter()
        .chain(app_service_auth)
        .map(String::from)
        .collect();
    // The README's settings table lists them too (the docs test covers what the binary reads),
    // saying who reads them.
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    for name in app_service_auth {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` | ")))
            .unwrap_or_else(|| panic!("README settings table lacks {name}"));
        assert!(row.contains("Set by the template for App Service authentication, not read by the handler"), "{row}");
    }
    // Read by the binary, deliberately not set by the template: connection strings (keyless
    // deployment), the separate lead account (the app's own account holds the table), the
    // serve-mode key and the port the host sets.
    let mut unset: BTreeSet<String> =
        ["AzureWebJobsStorage", "LEADS_STORAGE", "LEADS_INGEST_KEY", "FUNCTIONS_CUSTOMHANDLER_PORT"].map(String::from).into();
    for suffix in ["accountName", "tableServiceUri", "credential", "clientId"] {
        unset.insert(format!("LEADS_STORAGE__{suffix}"));
    }
    unset.insert("AzureWebJobsStorage__tableServiceUri".into());
    // The inbox: serve's sign-in key and what App Service injects itself (INBOX_AUTH and
    // INBOX_TENANT_ID are set, empty unless the inbox's sign-in is configured: see
    // inbox_sign_in_is_app_service_authentication).
    for inbox in ["INBOX_KEY", "WEBSITE_AUTH_ENABLED"] {
        unset.insert(inbox.into());
    }
    // Tuning settings whose defaults suit a deployment; a publisher may add them as app settings.
    // The digest is optional, turned on by adding its two settings.
    // Retention is a publisher's policy, not a default: unset keeps leads forever.
    for tuning in [
        "NOTIFY_SEND_TIMEOUT_SECONDS",
        "NOTIFY_SWEEP_MINUTES",
        "NOTIFY_DIGEST_TO",
        "NOTIFY_DIGEST_SCHEDULE",
        "NOTIFY_DIGEST_DELAY_SECONDS",
        "NOTIFY_JOURNEY",
        "NOTIFY_IMMEDIATE",
        "LEADS_RETENTION_DAYS",
        "SSL_CERT_FILE",
    ] {
        unset.insert(tuning.into());
    }
    // Test endpoints of the CRM channels: the defaults are the CRMs' public ones.
    for tuning in ["DYNAMICS_AUTHORITY_HOST", "HUBSPOT_BASE_URL"] {
        unset.insert(tuning.into());
    }

    let t = template();
    let settings = app_settings(&t);
    let actual: BTreeSet<String> = settings.iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(settings.len(), actual.len(), "no setting twice");
    let unknown: Vec<&String> = actual.iter().filter(|n| !binary.contains(*n) && !platform.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "app settings the binary does not read: {unknown:?} (the identity settings need the handler that reads \
         AzureWebJobsStorage__accountName/__credential/__clientId)"
    );
    let missing: Vec<&String> = binary.iter().filter(|n| !actual.contains(*n) && !unset.contains(*n)).collect();
    assert!(missing.is_empty(), "settings the binary reads that the template does not set: {missing:?}");

    // Host storage and the lead table through the user-assigned identity.
    assert_eq!(setting(&t, "AzureWebJobsStorage__accountName"), "[variables('storageName')]");
    assert_eq!(setting(&t, "AzureWebJobsStorage__credential"), "managedidentity");
    assert_eq!(setting(&t, "AzureWebJobsStorage__clientId"), format!("[reference({IDENTITY}, '2023-01-31').clientId]"));
    assert!(setting(&t, "APPLICATIONINSIGHTS_CONNECTION_STRING").contains("ConnectionString"));
    // Telemetry with the identity too: the component takes no instrumentation-key ingestion.
    assert_eq!(
        setting(&t, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        format!("[format('ClientId={{0}};Authorization=AAD', reference({IDENTITY}, '2023-01-31').clientId)]")
    );
    // Secrets: a Key Vault reference when the parameter is given, empty (that channel off) when
    // not; the vault secret is written from the parameter only when it is not empty.
    let secrets = [
        "SMTP_PASSWORD",
        "NOTIFY_WEBHOOK_URL",
        "NOTIFY_WEBHOOK_SECRET",
        "NOTIFY_TEAMS_URL",
        "NOTIFY_SLACK_URL",
        "DYNAMICS_CLIENT_SECRET",
        "SALESFORCE_CLIENT_SECRET",
        "HUBSPOT_TOKEN",
        "MARKETO_CLIENT_SECRET",
    ];
    let vault_secrets = all_of(&t, "Microsoft.KeyVault/vaults/secrets");
    let mut secret_params = BTreeSet::new();
    for secret in secrets {
        let value = setting(&t, secret);
        assert!(value.contains("@Microsoft.KeyVault("), "{secret} must be a Key Vault reference");
        let param = references(&value, "parameters").pop().unwrap_or_else(|| panic!("{secret}: no parameter in {value}"));
        assert_eq!(t["parameters"][&param]["type"], "securestring", "{secret}: {param} must be a securestring");
        let name = value.split("SecretName=").nth(1).and_then(|r| r.split(')').next()).unwrap_or_else(|| panic!("{value}"));
        assert_eq!(
            value,
            format!(
                "[if(empty(parameters('{param}')), '', format('@Microsoft.KeyVault(VaultName={{0}};SecretName={name})', variables('vaultName')))]"
            )
        );
        let kv = vault_secrets
            .iter()
            .find(|r| r["name"] == format!("[format('{{0}}/{name}', variables('vaultName'))]"))
            .unwrap_or_else(|| panic!("{secret}: no vault secret {name}"));
        assert_eq!(kv["condition"], format!("[not(empty(parameters('{param}')))]"), "{secret}");
        assert_eq!(kv["properties"]["value"], format!("[parameters('{param}')]"), "{secret}");
        assert_eq!(kv["properties"]["contentType"], "text/plain", "{secret}");
        secret_params.insert(param);
    }
    // Every secure parameter is one of these, and every vault secret belongs to one.
    let secure: BTreeSet<String> =
        t["parameters"].as_object().unwrap().iter().filter(|(_, p)| p["type"] == "securestring").map(|(n, _)| n.clone()).collect();
    assert_eq!(secret_params, secure, "every securestring parameter reaches the app as a Key Vault reference");
    assert_eq!(vault_secrets.len(), secrets.len());
    // What Flex Consumption rejects or replaces (functionAppConfig carries runtime and package).
    for gone in [
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_RUN_FROM_PACKAGE",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "AzureWebJobsStorage",
        "LEADS_STORAGE",
    ] {
        assert!(!actual.contains(gone), "{gone} must not be an app setting on Flex Consumption / keyless");
    }
}

#[test]
fn no_account_key_or_connection_string_reaches_the_app() {
    let t = template();
    let app = serde_json::to_string(function_app(&t)).unwrap();
    for needle in ["listKeys", "AccountKey=", "DefaultEndpointsProtocol", "SharedAccessSignature", "listAccountSas"] {
        assert!(!app.contains(needle), "the Function App must not get `{needle}`");
        // Nowhere else either: neither destination needs the template to read a key.
        assert!(!template_text().contains(needle), "the template must not use `{needle}`");
    }
    // Shared-key access is off unless the destination is Partner Center's "Azure Table".
    let storage = &resource(&t, "Microsoft.Storage/storageAccounts")["properties"];
    assert_eq!(storage["allowSharedKeyAccess"], "[variables('sharedKeyAccess')]");
    assert_eq!(t["variables"]["sharedKeyAccess"], "[equals(parameters('leadDestination'), 'azureTable')]");
    assert_eq!(t["parameters"]["leadDestination"]["defaultValue"], "https");
    assert_eq!(t["parameters"]["leadDestination"]["allowedValues"], serde_json::json!(["https", "azureTable"]));
    assert_eq!(storage["defaultToOAuthAuthentication"], true);
}

#[test]
fn the_identity_gets_its_roles_before_the_app_starts() {
    let t = template();
    let app = function_app(&t);
    let depends: Vec<&str> = app["dependsOn"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    let roles = all_of(&t, "Microsoft.Authorization/roleAssignments");
    let mut granted = BTreeSet::new();
    for r in &roles {
        let var = references(r["properties"]["roleDefinitionId"].as_str().unwrap(), "variables").pop().unwrap();
        let definition = t["variables"][&var].as_str().unwrap();
        let guid = definition.rsplit('\'').nth(1).unwrap();
        let scope = r["scope"].as_str().unwrap();
        let target = if scope.contains("Microsoft.Storage/storageAccounts") {
            "storage"
        } else if scope.contains("Microsoft.KeyVault/vaults") {
            "vault"
        } else if scope == "[format('Microsoft.Insights/components/{0}', variables('insightsName'))]" {
            "insights"
        } else {
            panic!("unexpected scope {scope}")
        };
        granted.insert((guid.to_string(), target));
        assert_eq!(r["properties"]["principalId"], format!("[reference({IDENTITY}, '2023-01-31').principalId]"));
        assert_eq!(r["properties"]["principalType"], "ServicePrincipal");
        // The app waits for this assignment: its id, as ARM builds it for an extension resource.
        let name = r["name"].as_str().unwrap().trim_start_matches('[').trim_end_matches(']');
        assert!(
            depends
                .iter()
                .any(|d| d.starts_with("[extensionResourceId(")
                    && d.contains(&format!("'Microsoft.Authorization/roleAssignments', {name})"))),
            "the Function App does not depend on {name}"
        );
    }
    let expected: BTreeSet<(String, &str)> = [
        (BLOB_DATA_OWNER.to_string(), "storage"),
        (TABLE_DATA_CONTRIBUTOR.to_string(), "storage"),
        (KEY_VAULT_SECRETS_USER.to_string(), "vault"),
        (MONITORING_METRICS_PUBLISHER.to_string(), "insights"),
    ]
    .into();
    assert_eq!(granted, expected);
    for needed in [
        "resourceId('Microsoft.Web/serverfarms'",
        "resourceId('Microsoft.Storage/storageAccounts/blobServices/containers'",
        "resourceId('Microsoft.Storage/storageAccounts/tableServices/tables'",
        IDENTITY,
    ] {
        assert!(depends.iter().any(|d| d.contains(needed)), "the Function App does not depend on {needed}");
    }
    // Key Vault references resolve on first start: the secrets exist before the app too.
    for secret in all_of(&t, "Microsoft.KeyVault/vaults/secrets") {
        let name = secret["name"].as_str().unwrap();
        let short = name.rsplit('/').next().unwrap().trim_end_matches("', variables('vaultName'))]");
        assert!(depends.iter().any(|d| d.contains(&format!("'{short}')"))), "the Function App does not depend on secret {short}");
    }
}

/// The lead inbox's sign-in: App Service built-in authentication with Microsoft Entra ID, only
/// when a client id is given; LeadIngest stays outside it (Microsoft posts with the function key
/// and cannot sign in); the tenant is pinned; no secret anywhere (the app's identity signs the
/// client assertion through a federated credential); the inbox's settings are empty otherwise.
#[test]
fn inbox_sign_in_is_app_service_authentication() {
    let t = template();
    let param = &t["parameters"]["inboxClientId"];
    assert_eq!((param["type"].as_str(), param["defaultValue"].as_str()), (Some("string"), Some("")), "off unless asked for");
    assert_eq!(t["variables"]["inboxSignIn"], "[not(empty(parameters('inboxClientId')))]");

    let configs = all_of(&t, "Microsoft.Web/sites/config");
    assert_eq!(configs.len(), 1, "one config resource: the authentication settings");
    let auth = configs[0];
    assert_eq!(auth["condition"], "[variables('inboxSignIn')]", "no authentication settings without a client id");
    assert_eq!(auth["name"], "[format('{0}/authsettingsV2', parameters('appName'))]");
    assert!(
        auth["dependsOn"].as_array().unwrap().iter().any(|d| d == "[resourceId('Microsoft.Web/sites', parameters('appName'))]"),
        "the site exists first"
    );
    let p = &auth["properties"];
    assert_eq!(p["platform"]["enabled"], true);

    // Every request signs in, LeadIngest excepted: the path the Partner Center URL names (its
    // route under the default `api` prefix, which host.json does not change).
    let global = &p["globalValidation"];
    assert_eq!(global["requireAuthentication"], true);
    assert_eq!(global["unauthenticatedClientAction"], "RedirectToLoginPage", "a person opening the inbox is sent to sign in");
    assert_eq!(global["excludedPaths"], serde_json::json!(["/api/LeadIngest"]));
    let ingest: Value = serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/LeadIngest/function.json")).unwrap()).unwrap();
    assert_eq!(ingest["bindings"][0]["route"], "LeadIngest");
    let host: Value = serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/host.json")).unwrap()).unwrap();
    assert!(host["extensions"]["http"].get("routePrefix").is_none(), "LeadIngest is served at /api/LeadIngest");
    let deploy = std::fs::read_to_string(format!("{ROOT}/infra/deploy.sh")).unwrap();
    assert!(deploy.contains("/api/LeadIngest?code="), "the URL deploy.sh prints is the excluded path");
    assert_eq!(p["httpSettings"]["requireHttps"], true);

    // Microsoft Entra ID, the subscription's tenant, v2 endpoint, this registration only.
    let aad = &p["identityProviders"]["azureActiveDirectory"];
    assert_eq!(aad["enabled"], true);
    let providers: Vec<&String> = p["identityProviders"].as_object().unwrap().keys().collect();
    assert_eq!(providers, ["azureActiveDirectory"], "no other identity provider");
    assert_eq!(
        aad["registration"]["openIdIssuer"], "[format('{0}{1}/v2.0', environment().authentication.loginEndpoint, subscription().tenantId)]",
        "the tenant is pinned in the issuer"
    );
    assert_eq!(aad["registration"]["clientId"], "[parameters('inboxClientId')]");
    assert_eq!(aad["validation"]["allowedAudiences"], serde_json::json!(["[parameters('inboxClientId')]"]));
    assert_eq!(
        aad["validation"]["defaultAuthorizationPolicy"]["allowedApplications"],
        serde_json::json!(["[parameters('inboxClientId')]"])
    );

    // No secret: the client assertion comes from the app's own identity (federated credential),
    // named by the setting App Service reserves for it.
    assert_eq!(aad["registration"]["clientSecretSettingName"], "OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID");
    assert!(aad["registration"].get("clientSecretCertificateThumbprint").is_none());
    let text = template_text();
    assert!(!text.contains("MICROSOFT_PROVIDER_AUTHENTICATION_SECRET"), "no client secret setting");
    assert!(!t["parameters"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.to_ascii_lowercase().contains("inbox") && t["parameters"][k]["type"] == "securestring"));
    assert_eq!(
        setting(&t, "OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID"),
        format!("[if(variables('inboxSignIn'), reference({IDENTITY}, '2023-01-31').clientId, '')]"),
        "the identity the app already has (assigned to this app only)"
    );
    // The handler needs no tokens (it reads the principal header): no token store, so no SAS URL
    // secret for one either.
    assert_eq!(p["login"]["tokenStore"]["enabled"], false);

    // The inbox's own settings: empty (unset, the inbox shut) unless the sign-in is configured,
    // and then the tenant the issuer names.
    assert_eq!(setting(&t, "INBOX_AUTH"), "[if(variables('inboxSignIn'), 'appservice', '')]");
    assert_eq!(setting(&t, "INBOX_TENANT_ID"), "[if(variables('inboxSignIn'), subscription().tenantId, '')]");
    assert_eq!(setting(&t, "WEBSITE_AUTH_AAD_ALLOWED_TENANTS"), "[if(variables('inboxSignIn'), subscription().tenantId, '')]");
    let auth_rs = std::fs::read_to_string(format!("{ROOT}/src/settings/inbox.rs")).unwrap();
    assert!(auth_rs.contains("v.eq_ignore_ascii_case(\"appservice\")"), "the value the handler accepts");

    // deploy.sh reads these outputs: the identity for the federated credential, the inbox's address.
    for output in ["identityPrincipalId", "inboxUrl", "inboxSignIn"] {
        assert!(t["outputs"].get(output).is_some(), "no output {output}");
    }
    assert_eq!(t["outputs"]["identityPrincipalId"]["value"], format!("[reference({IDENTITY}, '2023-01-31').principalId]"));
}

#[test]
fn alerts_exist_when_an_alert_address_is_given() {
    let t = template();
    assert_eq!(t["parameters"]["alertEmail"]["defaultValue"], "");
    assert_eq!(t["variables"]["alertsOn"], "[not(empty(parameters('alertEmail')))]");
    let group = resource(&t, "Microsoft.Insights/actionGroups");
    assert_eq!(group["condition"], "[variables('alertsOn')]");
    assert_eq!(group["properties"]["emailReceivers"][0]["emailAddress"], "[parameters('alertEmail')]");
    assert!(group["properties"]["groupShortName"].as_str().unwrap().len() <= 12);

    let rules = all_of(&t, "Microsoft.Insights/scheduledQueryRules");
    assert_eq!(rules.len(), 3);
    let query = |needle: &str| {
        let r = rules.iter().find(|r| r["properties"]["criteria"]["allOf"][0]["query"].as_str().unwrap().contains(needle));
        *r.unwrap_or_else(|| panic!("no alert querying {needle}"))
    };
    for r in &rules {
        assert_eq!(r["condition"], "[variables('alertsOn')]");
        assert_eq!(
            r["properties"]["actions"]["actionGroups"][0],
            "[resourceId('Microsoft.Insights/actionGroups', variables('actionGroupName'))]"
        );
        assert_eq!(r["properties"]["scopes"][0], "[resourceId('Microsoft.Insights/components', variables('insightsName'))]");
    }
    // (a) The handler's own words when it gives up on a channel.
    let notify_src = std::fs::read_to_string(format!("{ROOT}/src/notify/deliver.rs")).unwrap();
    assert!(notify_src.contains("\"notification failed for good"), "the alert's text must match the handler's log line");
    let failed = query("notification failed for good");
    assert!(failed["properties"]["criteria"]["allOf"][0]["query"].as_str().unwrap().starts_with("traces"));
    assert_eq!(failed["properties"]["criteria"]["allOf"][0]["operator"], "GreaterThan");
    // (b) Heartbeat: no successful LeadNotify within heartbeatMinutes.
    let silent = query("\"LeadNotify\"");
    let crit = &silent["properties"]["criteria"]["allOf"][0];
    assert!(crit["query"].as_str().unwrap().contains("success == true"));
    assert_eq!((crit["operator"].as_str(), crit["threshold"].as_i64()), (Some("LessThan"), Some(1)));
    assert_eq!(silent["properties"]["windowSize"], "[variables('heartbeatWindow')[string(parameters('heartbeatMinutes'))]]");
    assert_eq!(t["parameters"]["heartbeatMinutes"]["defaultValue"], 30);
    // Each allowed value maps to an ISO 8601 window of that many minutes.
    for m in t["parameters"]["heartbeatMinutes"]["allowedValues"].as_array().unwrap() {
        let m = m.as_i64().unwrap();
        let window = t["variables"]["heartbeatWindow"][m.to_string()].as_str().unwrap_or_else(|| panic!("no window for {m}"));
        let minutes = match window.strip_prefix("PT").unwrap() {
            w if w.ends_with('H') => w.trim_end_matches('H').parse::<i64>().unwrap() * 60,
            w => w.trim_end_matches('M').parse::<i64>().unwrap(),
        };
        assert_eq!(minutes, m, "{window}");
    }
    // (c) LeadIngest answering 5xx.
    let ingest = query("\"LeadIngest\"");
    assert!(ingest["properties"]["criteria"]["allOf"][0]["query"].as_str().unwrap().contains("toint(resultCode) >= 500"));
    // The request names are the function folders.
    for f in ["LeadNotify", "LeadIngest"] {
        assert!(std::path::Path::new(&format!("{ROOT}/{f}/function.json")).exists());
    }
}

#[test]
fn security_settings_hold() {
    let t = template();
    let storage = &resource(&t, "Microsoft.Storage/storageAccounts")["properties"];
    assert_eq!(storage["supportsHttpsTrafficOnly"], true);
    assert_eq!(storage["minimumTlsVersion"], "TLS1_2");
    assert_eq!(storage["allowBlobPublicAccess"], false);
    let app = function_app(&t);
    assert_eq!(app["properties"]["httpsOnly"], true);
    let site_config = app["properties"]["siteConfig"].as_object().unwrap();
    assert_eq!(site_config["minTlsVersion"], "1.2");
    // Flex Consumption rejects some siteConfig properties (ARM error 51021: FtpsState,
    // Use32BitWorkerProcess, NetFrameworkVersion, LinuxFxVersion, ...). Only these go there.
    for key in site_config.keys() {
        assert!(["appSettings", "minTlsVersion", "scmMinTlsVersion", "http20Enabled"].contains(&key.as_str()), "siteConfig.{key} on Flex");
    }
    assert!(site_config.get("ftpsState").is_none(), "no ftpsState on the Flex site");
    let skips = app["metadata"]["checkov"].as_array().unwrap();
    assert!(skips.iter().any(|s| s.as_str().unwrap().starts_with("CKV_AZURE_78: ")), "the FTP check is skipped with its reason");
    let vault = &resource(&t, "Microsoft.KeyVault/vaults")["properties"];
    assert_eq!(vault["enableRbacAuthorization"], true);
    assert_eq!(vault["enableSoftDelete"], true);
    assert!(resources(&t).iter().any(|r| r["type"] == "Microsoft.Storage/storageAccounts/tableServices/tables"));
    let insights = resource(&t, "Microsoft.Insights/components");
    assert!(insights["properties"]["WorkspaceResourceId"].as_str().unwrap().contains("Microsoft.OperationalInsights/workspaces"));
    assert_eq!(insights["properties"]["DisableLocalAuth"], true, "telemetry only with Microsoft Entra ID");
}

/// A soft-deleted vault keeps its name for its retention: the name can be changed with a salt,
/// without changing the name of an existing deployment's vault.
#[test]
fn the_vault_name_can_be_salted() {
    let t = template();
    assert_eq!(t["parameters"]["vaultNameSalt"]["defaultValue"], "");
    let name = t["variables"]["vaultName"].as_str().unwrap();
    assert!(name.contains("if(empty(parameters('vaultNameSalt')), uniqueString(resourceGroup().id, parameters('appName')),"), "{name}");
    let vault = resource(&t, "Microsoft.KeyVault/vaults");
    assert_eq!(vault["properties"]["softDeleteRetentionInDays"], 7);
    let reason =
        vault["metadata"]["checkov"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).find(|s| s.starts_with("CKV_AZURE_110"));
    assert!(reason.unwrap().contains("purge protection or not"), "{reason:?}");
}

/// checkov skips live on the resource (`metadata.checkov`), one `CKV_AZURE_n: reason` each.
#[test]
fn every_checkov_skip_gives_a_reason() {
    let t = template();
    let mut skips = 0;
    for r in resources(&t) {
        let Some(list) = r["metadata"].get("checkov") else { continue };
        for s in list.as_array().unwrap() {
            let s = s.as_str().unwrap();
            let (id, reason) = s.split_once(": ").unwrap_or_else(|| panic!("`{s}` is not `ID: reason`"));
            assert!(id.starts_with("CKV_AZURE_") && id[10..].chars().all(|c| c.is_ascii_digit()), "{s}");
            assert!(reason.len() >= 20, "give a reason: {s}");
            skips += 1;
        }
    }
    assert!(skips > 0);
    let requirements = std::fs::read_to_string(format!("{ROOT}/scripts/requirements-test.txt")).unwrap();
    assert!(requirements.lines().any(|l| l.starts_with("checkov==")), "checkov is pinned");
    let test_script = std::fs::read_to_string(format!("{ROOT}/scripts/test")).unwrap();
    assert!(test_script.contains("run_checkov"), "scripts/test runs checkov");
}

#[test]
fn parameters_sample_only_sets_declared_parameters() {
    let t = template();
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/infra/azuredeploy.parameters.sample.json")).unwrap()).unwrap();
    for name in sample["parameters"].as_object().unwrap().keys() {
        assert!(t["parameters"].get(name).is_some(), "{name} is not a template parameter");
    }
    // The sample shows every secret (empty = off), though each defaults to empty.
    for (name, p) in t["parameters"].as_object().unwrap() {
        if p["type"] == "securestring" {
            assert!(sample["parameters"].get(name).is_some(), "sample lacks secret {name}");
        }
    }
}

fn dry_run(shell_args: &[&str], args: &[&str]) -> (bool, String, String) {
    let out = Command::new("bash")
        .args(shell_args)
        .arg(format!("{ROOT}/infra/deploy.sh"))
        .args(args)
        .env("AZ", "/nonexistent/az")
        .current_dir(ROOT)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn deploy_dry_run_needs_no_azure_with_and_without_each_option() {
    let base = ["--what-if", "--resource-group", "rg-test"];
    let always = [
        "az group create --name rg-test",
        "az deployment group create --resource-group rg-test",
        "config-zip",
        "would retry the upload up to 10 times",
        "az keyvault list-deleted --resource-type vault",
        "would package",
        "function keys list",
        "/api/LeadIngest?code=",
    ];
    let sample = "infra/azuredeploy.parameters.sample.json";
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        // (extra arguments, must appear, must not appear)
        (
            &[],
            &["cargo build --release", "--location westeurope"],
            &["--parameters", "role assignment", "show-connection-string", "az ad app", "/api/Inbox"],
        ),
        (&["--skip-build"], &[], &["cargo build"]),
        (&["--location", "northeurope"], &["--location northeurope"], &[]),
        (&["--app-name", "leads-contoso"], &["--parameters appName=leads-contoso", "--name leads-contoso"], &[]),
        (&["--parameters", sample], &[&format!("--parameters @{sample}")], &[]),
        (&["--lead-destination", "https"], &["--parameters leadDestination=https"], &["show-connection-string"]),
        (&["--lead-destination", "azureTable"], &["--parameters leadDestination=azureTable", "show-connection-string"], &[]),
        (&["--alert-email", "ops@contoso.com"], &["--parameters alertEmail=ops@contoso.com"], &[]),
        (&["--vault-name-salt", "2"], &["--parameters vaultNameSalt=2"], &[]),
        (
            &["--grant-me-table-reader"],
            &["az ad signed-in-user show", "role assignment list", "role assignment create", TABLE_DATA_READER, "leads status"],
            &[],
        ),
        (
            &["--inbox"],
            &[
                "az account show --query tenantId",
                "az ad app create --display-name Marketplace\\ leads\\ inbox",
                "--sign-in-audience AzureADMyOrg",
                "--web-redirect-uris https://OUTPUT:defaultHostName/.auth/login/aad/callback",
                "--enable-id-token-issuance true",
                "b563d09a-bedd-4a79-99ca-c11b43fd62b3",
                "8011039a-f070-4aac-a440-10fba0b55975",
                "az ad sp create",
                "--set appRoleAssignmentRequired=true",
                "federated-credential create",
                "api://AzureADTokenExchange",
                "az ad app update --id OUTPUT:inbox-client-id --web-redirect-uris https://OUTPUT:defaultHostName/.auth/login/aad/callback --enable-id-token-issuance true",
                "az ad app federated-credential update --id OUTPUT:inbox-client-id --federated-credential-id function-app-identity",
                "--parameters inboxClientId=OUTPUT:inbox-client-id",
                "appRoleAssignedTo",
                "https://OUTPUT:defaultHostName/api/Inbox",
                "Users and groups",
            ],
            &["role assignment"],
        ),
        (
            &["--skip-build", "--app-name", "a", "--parameters", sample, "--lead-destination", "azureTable", "--alert-email", "x@y.z"],
            &["--parameters @infra/azuredeploy.parameters.sample.json --parameters appName=a --parameters leadDestination=azureTable --parameters alertEmail=x@y.z"],
            &[],
        ),
    ];
    // `bash --posix` as well: one more shell mode the script must not depend on.
    for shell in [&[][..], &["--posix"][..]] {
        for (extra, present, absent) in cases {
            let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
            let (ok, stdout, stderr) = dry_run(shell, &args);
            assert!(ok, "{args:?}: {stdout}{stderr}");
            for p in always.iter().chain(present.iter()) {
                assert!(stdout.contains(p), "{args:?}: dry run lacks `{p}`:\n{stdout}");
            }
            for a in absent.iter() {
                assert!(!stdout.contains(a), "{args:?}: dry run has `{a}`:\n{stdout}");
            }
        }
    }
    let (ok, _, stderr) = dry_run(&[], &["--what-if"]);
    assert!(!ok && stderr.contains("--resource-group"));
    let (ok, _, stderr) = dry_run(&[], &["--what-if", "--resource-group", "rg", "--lead-destination", "blob"]);
    assert!(!ok && stderr.contains("--lead-destination"));
}

/// macOS ships bash 3.2. No bash 3.2 here, so the script is checked for what 3.2 lacks.
#[test]
fn deploy_script_avoids_bash_4_constructs() {
    let script = std::fs::read_to_string(format!("{ROOT}/infra/deploy.sh")).unwrap();
    let code: Vec<&str> = script.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let forbidden = [
        ("declare -A", "associative arrays"),
        ("local -A", "associative arrays"),
        ("typeset -A", "associative arrays"),
        ("declare -n", "namerefs"),
        ("local -n", "namerefs"),
        ("mapfile", "mapfile"),
        ("readarray", "readarray"),
        ("coproc", "coproc"),
        ("|&", "|&"),
        (";;&", ";;&"),
        (";&", ";&"),
        ("&>>", "&>>"),
        (",,}", "case conversion"),
        ("^^}", "case conversion"),
        ("@Q}", "${var@Q}"),
        ("[[ -v", "[[ -v"),
        ("EPOCHSECONDS", "EPOCHSECONDS"),
        ("[-1]}", "negative array index"),
    ];
    for (n, line) in code.iter().enumerate() {
        for (pat, what) in forbidden {
            assert!(!line.contains(pat), "deploy.sh line {}: {what} needs bash 4+: {line}", n + 1);
        }
        // An array expanded as "${a[@]}" is unbound under `set -u` when empty before bash 4.4:
        // it must be guarded as ${a[@]+"${a[@]}"}.
        for (i, _) in line.match_indices("\"${") {
            let rest = &line[i + 3..];
            let Some(end) = rest.find('}') else { continue };
            let inner = &rest[..end];
            if let Some(name) = inner.strip_suffix("[@]") {
                assert!(line[..i].ends_with(&format!("${{{name}[@]+")), "deploy.sh line {}: unguarded \"${{{inner}}}\": {line}", n + 1);
            }
        }
    }
}

/// A stand-in for the Azure CLI that records its arguments and answers the queries the script
/// reads.
const FAKE_AZ: &str = r#"#!/usr/bin/env bash
echo "$*" >> "$AZ_LOG"
case "$*" in
  *"deployment group show"*functionAppName*) echo leads-app ;;
  *"deployment group show"*defaultHostName*) echo leads-app.azurewebsites.net ;;
  *"deployment group show"*storageAccountName*) echo stleads ;;
  *"deployment group show"*storageAccountId*) echo /subscriptions/s/resourceGroups/rg-leads/providers/Microsoft.Storage/storageAccounts/stleads ;;
  *"ad signed-in-user show"*) echo 00000000-0000-0000-0000-00000000cafe ;;
  *"role assignment list"*) echo "${ROLE_EXISTS:-0}" ;;
  *"function keys list"*) echo the-function-key ;;
  *"deployment group show"*identityPrincipalId*) echo 00000000-0000-0000-0000-0000000000d1 ;;
  *"account show"*) echo 00000000-0000-0000-0000-000000007e11 ;;
  *"ad app list"*) [ -z "$INBOX_APP" ] || echo "$INBOX_APP" ;;
  *"ad app create"*)
    if [ -n "$APP_CREATE_DENIED" ]; then echo "${APP_CREATE_ERROR:-ERROR: Insufficient privileges to complete the operation.}" >&2; exit 1; fi
    echo 00000000-0000-0000-0000-0000000000a1 ;;
  *"ad sp list"*) [ -z "$INBOX_SP" ] || echo "$INBOX_SP" ;;
  *"ad sp create"*) echo 00000000-0000-0000-0000-0000000000b1 ;;
  # The subject of the credential named function-app-identity, when there is one.
  *"federated-credential list"*) [ -z "$FIC_SUBJECT" ] || echo "$FIC_SUBJECT" ;;
  *"rest --method get"*appRoleAssignedTo*) echo "${ROLE_ASSIGNED:-0}" ;;
  *"keyvault list-deleted"*) [ -z "$DELETED_VAULT" ] || printf '%s\twesteurope\t/subscriptions/s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s\n' "$DELETED_VAULT" "${DELETED_VAULT_GROUP:-RG-Leads}" "$DELETED_VAULT" ;;
  *config-zip*)
    # ZIP_FAILS uploads answer ZIP_ERROR (default a 403) before one succeeds.
    n="$(cat "$AZ_LOG.zip" 2>/dev/null || echo 0)"
    if [ "$n" -lt "${ZIP_FAILS:-0}" ]; then
      echo $((n + 1)) > "$AZ_LOG.zip"
      echo "${ZIP_ERROR:-ERROR: Status Code: 403, Forbidden}" >&2
      exit 1
    fi ;;
esac
"#;

#[test]
fn deploy_packages_the_app_and_prints_the_partner_center_url_twice_alike() {
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    std::fs::write(&az, FAKE_AZ).unwrap();
    Command::new("chmod").arg("+x").arg(&az).status().unwrap(); // called as `$AZ`
    let log = dir.path().join("az.log");
    let zip = dir.path().join("package.zip");
    // A small executable in the handler's place: what is checked is how the package is made
    // (mode, layout, reproducibility), and zipping the 100 MB debug binary three times took most
    // of this test's 40 s.
    let handler = dir.path().join("handler");
    std::fs::write(&handler, "#!/bin/sh\necho handler\n").unwrap();
    Command::new("chmod").arg("755").arg(&handler).status().unwrap();
    let run = |extra: &[&str], role_exists: &str| {
        Command::new("bash")
            .arg(format!("{ROOT}/infra/deploy.sh"))
            .args(["--resource-group", "rg-leads", "--skip-build"])
            .args(extra)
            .env("AZ", &az)
            .env("AZ_LOG", &log)
            .env("ROLE_EXISTS", role_exists)
            .env("HANDLER_BINARY", &handler)
            .env("PACKAGE_PATH", &zip)
            .output()
            .unwrap()
    };
    let first = run(&[], "0");
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("https://leads-app.azurewebsites.net/api/LeadIngest?code=the-function-key"), "{stdout}");
    let calls_once = std::fs::read_to_string(&log).unwrap();
    assert!(calls_once.contains("deployment group create --resource-group rg-leads"));
    assert!(calls_once.contains("functionapp deployment source config-zip --resource-group rg-leads --name leads-app"));
    assert!(!calls_once.contains("role assignment"), "{calls_once}");

    // The package: handler (executable, Unix mode recorded) at the root, host.json and both
    // function folders.
    let listing = Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); \
             [print(i.filename, oct(i.external_attr >> 16), i.create_system) for i in z.infolist()]",
        ])
        .arg(&zip)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("handler 0o100755 3"), "{listing}");
    for f in
        ["host.json 0o100644", "LeadIngest/function.json 0o100644", "LeadNotify/function.json 0o100644", "Inbox/function.json 0o100644"]
    {
        assert!(listing.contains(f), "{listing}");
    }
    let package_once = std::fs::read(&zip).unwrap();

    // Idempotent: the second run makes the same calls with the same bytes.
    std::fs::remove_file(&log).unwrap();
    let second = run(&[], "0");
    assert!(second.status.success());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), calls_once);
    assert_eq!(std::fs::read(&zip).unwrap(), package_once, "the package is reproducible");

    // --grant-me-table-reader: assigns the role once, not again when it exists.
    std::fs::remove_file(&log).unwrap();
    let grant = run(&["--grant-me-table-reader", "--alert-email", "ops@contoso.com"], "0");
    let stdout = String::from_utf8_lossy(&grant.stdout).to_string();
    assert!(grant.status.success(), "{stdout}{}", String::from_utf8_lossy(&grant.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("--parameters alertEmail=ops@contoso.com"), "{calls}");
    assert!(
        calls.contains(&format!(
            "role assignment create --assignee-object-id 00000000-0000-0000-0000-00000000cafe --assignee-principal-type User \
             --role {TABLE_DATA_READER} --scope /subscriptions/s/resourceGroups/rg-leads/providers/Microsoft.Storage/storageAccounts/stleads"
        )),
        "{calls}"
    );
    assert!(stdout.contains("AzureWebJobsStorage__accountName=stleads handler leads status"), "{stdout}");
    std::fs::remove_file(&log).unwrap();
    let again = run(&["--grant-me-table-reader", "--alert-email", "ops@contoso.com"], "1");
    assert!(again.status.success());
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("role assignment list") && !calls.contains("role assignment create"), "{calls}");
}

/// Runs deploy.sh (no build) against the recording stand-in for `az`, with extra environment.
fn deploy_with_fake_az(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (bool, String, String, String) {
    let az = dir.join("az");
    std::fs::write(&az, FAKE_AZ).unwrap();
    Command::new("chmod").arg("+x").arg(&az).status().unwrap();
    // A stand-in binary: these runs are about the calls, not the package (packaging the real one
    // is what makes the end-to-end test slow).
    let handler = dir.join("handler");
    std::fs::write(&handler, "#!/bin/sh\n").unwrap();
    Command::new("chmod").arg("+x").arg(&handler).status().unwrap();
    let log = dir.join("az.log");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(dir.join("az.log.zip"));
    let out = Command::new("bash")
        .arg(format!("{ROOT}/infra/deploy.sh"))
        .args(["--resource-group", "rg-leads", "--skip-build"])
        .args(extra)
        .env("AZ", &az)
        .env("AZ_LOG", &log)
        .env("HANDLER_BINARY", &handler)
        .env("PACKAGE_PATH", dir.join("package.zip"))
        .env("ZIP_RETRY_SECONDS", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

/// The first upload after the role assignments may be refused while they apply: retried on
/// 403, a bounded number of times, with a message; any other failure stops at once.
#[test]
fn deploy_retries_the_package_upload_while_it_is_refused_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = |log: &str| log.lines().filter(|l| l.contains("config-zip")).count();

    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &[], &[("ZIP_FAILS", "2")]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(uploads(&log), 3, "{log}");
    assert!(stderr.contains("refused (403)") && stderr.contains("attempt 2 of 10"), "{stderr}");
    assert!(stdout.contains("/api/LeadIngest?code=the-function-key"), "{stdout}");

    let (ok, _, stderr, log) = deploy_with_fake_az(dir.path(), &[], &[("ZIP_FAILS", "99")]);
    assert!(!ok);
    assert_eq!(uploads(&log), 10, "bounded: {log}");
    assert!(stderr.contains("after 10 attempts"), "{stderr}");
    assert!(!log.contains("function keys list"), "{log}");

    let (ok, _, stderr, log) = deploy_with_fake_az(dir.path(), &[], &[("ZIP_FAILS", "1"), ("ZIP_ERROR", "ERROR: zip file is invalid")]);
    assert!(!ok);
    assert_eq!(uploads(&log), 1, "no retry for other errors: {log}");
    assert!(stderr.contains("zip file is invalid") && stderr.contains("the package upload failed"), "{stderr}");
}

/// `--inbox`: the first run makes the registration (single tenant, callback, ID tokens, the two
/// roles), its enterprise application (role assignment required), the federated credential for
/// the app's identity, deploys the template again with the client id and gives the person running
/// it Leads.Manage; a re-run finds all of it and deploys once, with the client id; without the
/// right to register applications the rest is deployed, the inbox is not, and the run fails clearly.
#[test]
fn deploy_sets_up_the_inbox_sign_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = "00000000-0000-0000-0000-0000000000a1";
    let sp = "00000000-0000-0000-0000-0000000000b1";
    let principal = "00000000-0000-0000-0000-0000000000d1";
    let deployments = |log: &str| log.lines().filter(|l| l.starts_with("deployment group create")).count();

    // First run: nothing exists.
    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--inbox"], &[("ENTRA_RETRY_SECONDS", "0")]);
    assert!(ok, "{stdout}{stderr}");
    let uri = "api://00000000-0000-0000-0000-000000007e11/marketplace-leads-leads-app";
    assert!(log.contains(&format!("ad app list --identifier-uri {uri} --query [0].appId")), "{log}");
    let create = log.lines().find(|l| l.starts_with("ad app create")).unwrap_or_else(|| panic!("no registration: {log}"));
    for part in [
        "--display-name Marketplace leads inbox (leads-app)",
        "--sign-in-audience AzureADMyOrg",
        &format!("--identifier-uris {uri}"),
        "--web-redirect-uris https://leads-app.azurewebsites.net/.auth/login/aad/callback",
        "--enable-id-token-issuance true",
    ] {
        assert!(create.contains(part), "{part}: {create}");
    }
    let roles_json = create.split("--app-roles ").nth(1).unwrap().split(" --query").next().unwrap();
    let roles: Value = serde_json::from_str(roles_json).unwrap();
    let roles = roles.as_array().unwrap();
    assert_eq!(roles.len(), 2);
    for (value, id) in [("Leads.Read", "b563d09a-bedd-4a79-99ca-c11b43fd62b3"), ("Leads.Manage", "8011039a-f070-4aac-a440-10fba0b55975")] {
        let role = roles.iter().find(|r| r["value"] == value).unwrap_or_else(|| panic!("no role {value}"));
        assert_eq!(role["id"], id, "stable role ids");
        assert_eq!(role["allowedMemberTypes"], serde_json::json!(["User"]));
        assert_eq!(role["isEnabled"], true);
    }
    // The handler checks the same role names.
    let auth_rs = std::fs::read_to_string(format!("{ROOT}/src/inbox/auth.rs")).unwrap();
    assert!(auth_rs.contains("\"Leads.Read\"") && auth_rs.contains("\"Leads.Manage\""));
    assert!(log.contains(&format!("ad sp create --id {client}")), "{log}");
    assert!(log.contains(&format!("ad sp update --id {sp} --set appRoleAssignmentRequired=true")), "{log}");
    let fic = log.lines().find(|l| l.starts_with("ad app federated-credential create")).unwrap_or_else(|| panic!("no FIC: {log}"));
    let fic_json: Value = serde_json::from_str(fic.split("--parameters ").nth(1).unwrap().split(" --output").next().unwrap()).unwrap();
    assert_eq!(fic_json["issuer"], "https://login.microsoftonline.com/00000000-0000-0000-0000-000000007e11/v2.0");
    assert_eq!(fic_json["name"], "function-app-identity");
    assert_eq!(fic_json["subject"], principal, "the app's identity (principal id)");
    assert_eq!(fic_json["audiences"], serde_json::json!(["api://AzureADTokenExchange"]));
    // Made with its callback and ID tokens: nothing to update on the first run.
    assert!(!log.contains("ad app update") && !log.contains("federated-credential update"), "{log}");
    // Two deployments: the second one with the client id, after the credential exists.
    assert_eq!(deployments(&log), 2, "{log}");
    let second = log.lines().filter(|l| l.starts_with("deployment group create")).nth(1).unwrap();
    assert!(second.contains(&format!("--parameters inboxClientId={client}")), "{second}");
    assert!(log.find("federated-credential create").unwrap() < log.rfind("deployment group create").unwrap());
    // Leads.Manage for the signed-in user.
    let post = log.lines().find(|l| l.starts_with("rest --method post")).unwrap_or_else(|| panic!("no role assignment: {log}"));
    assert!(post.contains(&format!("https://graph.microsoft.com/v1.0/servicePrincipals/{sp}/appRoleAssignedTo")), "{post}");
    let body: Value = serde_json::from_str(post.split("--body ").nth(1).unwrap().split(" --output").next().unwrap()).unwrap();
    assert_eq!(body["principalId"], "00000000-0000-0000-0000-00000000cafe");
    assert_eq!(body["resourceId"], sp);
    assert_eq!(body["appRoleId"], "8011039a-f070-4aac-a440-10fba0b55975");
    assert!(stdout.contains("https://leads-app.azurewebsites.net/api/Inbox") && stdout.contains("You hold Leads.Manage"), "{stdout}");
    assert!(stdout.contains("Users and groups") && stdout.contains("appRoleAssignedTo"), "how to grant others: {stdout}");
    assert!(stdout.contains("/api/LeadIngest?code=the-function-key"), "{stdout}");

    // Re-run: all of it exists; one deployment, with the client id; nothing created.
    let (ok, stdout, stderr, log) = deploy_with_fake_az(
        dir.path(),
        &["--inbox"],
        &[("INBOX_APP", client), ("INBOX_SP", sp), ("FIC_SUBJECT", principal), ("ROLE_ASSIGNED", "1")],
    );
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(deployments(&log), 1, "{log}");
    assert!(log
        .lines()
        .find(|l| l.starts_with("deployment group create"))
        .unwrap()
        .contains(&format!("--parameters inboxClientId={client}")));
    for created in ["ad app create", "ad sp create", "federated-credential create", "federated-credential update", "rest --method post"] {
        assert!(!log.contains(created), "re-run created {created}: {log}");
    }
    // The registration's callback (and ID tokens) are set again on every run: the same values.
    assert!(
        log.contains(&format!(
            "ad app update --id {client} --web-redirect-uris https://leads-app.azurewebsites.net/.auth/login/aad/callback \
             --enable-id-token-issuance true"
        )),
        "{log}"
    );
    // The credential is looked for by name, and its subject compared with the app's identity.
    assert!(
        log.contains(&format!("ad app federated-credential list --id {client} --query [?name=='function-app-identity'].subject | [0]")),
        "{log}"
    );

    // No right to register applications: the rest is deployed, the URL printed, the run fails.
    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--inbox"], &[("APP_CREATE_DENIED", "1")]);
    assert!(!ok);
    assert!(stderr.contains("Application Developer") && stderr.contains("LeadIngest works"), "{stderr}");
    // The Azure CLI's answer is the cause; the two usual reasons are named, the identifier URI with them.
    assert!(stderr.contains("Insufficient privileges") && stderr.contains("the Azure CLI's answer above is the cause"), "{stderr}");
    assert!(stderr.contains("no right to register applications"), "{stderr}");
    assert!(stderr.contains(&format!("policy on identifier URIs refusing {uri}")) && stderr.contains("nonDefaultUriAddition"), "{stderr}");
    assert!(stderr.contains("the lead inbox's sign-in was not set up"), "{stderr}");
    assert!(stdout.contains("/api/LeadIngest?code=the-function-key"), "{stdout}");
    assert!(!stdout.contains("/api/Inbox"), "{stdout}");
    assert_eq!(deployments(&log), 1, "no deployment with a client id: {log}");
    assert!(!log.contains("inboxClientId"), "{log}");

    // The tenant's app-management policy refuses the identifier URI: not blamed on missing rights alone.
    let policy = "ERROR: Insufficient privileges to complete the operation. Policy: identifierUris.nonDefaultUriAddition";
    let (ok, _, stderr, _) = deploy_with_fake_az(dir.path(), &["--inbox"], &[("APP_CREATE_DENIED", "1"), ("APP_CREATE_ERROR", policy)]);
    assert!(!ok);
    assert!(stderr.contains(policy), "the Azure CLI's own answer is shown: {stderr}");
    assert!(stderr.contains("policy on identifier URIs") && stderr.contains("no right to register applications"), "{stderr}");
}

/// A resource group deleted and made again under the same app name: the registration (same
/// identifier URI) is found again, but the app has a new identity. The federated credential that
/// trusts the old one is pointed at the new one (sign-in would fail for good otherwise), and a
/// re-run after that changes nothing more.
#[test]
fn deploy_points_the_inbox_credential_at_a_new_identity() {
    let dir = tempfile::tempdir().unwrap();
    let client = "00000000-0000-0000-0000-0000000000a1";
    let principal = "00000000-0000-0000-0000-0000000000d1";
    let old = "00000000-0000-0000-0000-0000000000d0";
    let existing = [("INBOX_APP", client), ("INBOX_SP", "00000000-0000-0000-0000-0000000000b1"), ("ROLE_ASSIGNED", "1")];

    let env: Vec<(&str, &str)> = existing.iter().copied().chain([("FIC_SUBJECT", old)]).collect();
    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--inbox"], &env);
    assert!(ok, "{stdout}{stderr}");
    assert!(!log.contains("federated-credential create"), "one credential of that name: updated, not added: {log}");
    let update = log
        .lines()
        .find(|l| l.starts_with("ad app federated-credential update"))
        .unwrap_or_else(|| panic!("the credential still trusts the old identity: {log}"));
    assert!(
        update.starts_with(&format!(
            "ad app federated-credential update --id {client} --federated-credential-id function-app-identity --parameters "
        )),
        "{update}"
    );
    let body: Value = serde_json::from_str(update.split("--parameters ").nth(1).unwrap().split(" --output").next().unwrap()).unwrap();
    assert_eq!(body["subject"], principal, "{update}");
    assert_eq!(body["issuer"], "https://login.microsoftonline.com/00000000-0000-0000-0000-000000007e11/v2.0");
    assert_eq!(body["audiences"], serde_json::json!(["api://AzureADTokenExchange"]));
    assert!(stderr.contains(old) && stderr.contains(principal), "says what it repairs: {stderr}");
    // Only the credential named function-app-identity is looked at, and compared by subject.
    assert!(log.contains("--query [?name=='function-app-identity'].subject | [0]"), "{log}");
    // The redirect URI follows too (the same host here: set again, unchanged).
    assert!(
        log.contains(&format!(
            "ad app update --id {client} --web-redirect-uris https://leads-app.azurewebsites.net/.auth/login/aad/callback"
        )),
        "{log}"
    );

    // Repaired: the next run finds the credential with this subject and leaves it alone.
    let env: Vec<(&str, &str)> = existing.iter().copied().chain([("FIC_SUBJECT", principal)]).collect();
    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--inbox"], &env);
    assert!(ok, "{stdout}{stderr}");
    assert!(!log.contains("federated-credential update") && !log.contains("federated-credential create"), "{log}");
}

/// `--what-if --inbox` with a logged-in az looks the registration up (reads only) and gives the
/// template's what-if its client id, so the preview does not show the inbox being shut; with no
/// registration yet it says the first real run creates it.
#[test]
fn deploy_what_if_previews_the_inbox_as_a_real_run_would_deploy_it() {
    let dir = tempfile::tempdir().unwrap();
    let client = "00000000-0000-0000-0000-0000000000a1";
    let reads_only = |log: &str| {
        for line in log.lines() {
            assert!(
                ["account show", "deployment group show", "ad app list", "deployment group what-if"].iter().any(|r| line.starts_with(r)),
                "a what-if changed something: {line}"
            );
        }
    };

    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--what-if", "--inbox"], &[("INBOX_APP", client)]);
    assert!(ok, "{stdout}{stderr}");
    reads_only(&log);
    let uri = "api://00000000-0000-0000-0000-000000007e11/marketplace-leads-leads-app";
    assert!(log.contains(&format!("ad app list --identifier-uri {uri} --query [0].appId")), "{log}");
    let what_if = log.lines().find(|l| l.starts_with("deployment group what-if")).unwrap_or_else(|| panic!("no what-if: {log}"));
    assert!(what_if.contains(&format!("--parameters inboxClientId={client}")), "{what_if}");
    assert!(stdout.contains(&format!("the inbox's app registration exists (client id {client})")), "{stdout}");
    // The existing registration is updated, not created, and needs no second deployment.
    assert!(!stdout.contains("would create the registration") && !stdout.contains("deploy the template again"), "{stdout}");
    assert!(stdout.contains(&format!("would run: az ad app update --id {client} --web-redirect-uris")), "{stdout}");

    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &["--what-if", "--inbox"], &[]);
    assert!(ok, "{stdout}{stderr}");
    reads_only(&log);
    let what_if = log.lines().find(|l| l.starts_with("deployment group what-if")).unwrap();
    assert!(!what_if.contains("inboxClientId"), "{what_if}");
    assert!(
        stdout.contains("no app registration for the inbox exists yet") && stdout.contains("the first real run creates it"),
        "{stdout}"
    );
    // The app's name from the last deployment, not a placeholder, in what the real run would do.
    assert!(stdout.contains(&format!("would create the registration when none has the identifier URI {uri}")), "{stdout}");
}

/// A soft-deleted vault from this resource group (its name may be the one the template derives)
/// is named before the deployment, with the way through.
#[test]
fn deploy_names_a_soft_deleted_vault_of_this_group() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr, log) = deploy_with_fake_az(dir.path(), &[], &[("DELETED_VAULT", "kvabc123")]);
    assert!(ok, "{stdout}{stderr}");
    assert!(log.contains("keyvault list-deleted --resource-type vault"), "{log}");
    // The group matches without regard to case (Azure resource group names are case-insensitive).
    assert!(stderr.contains("kvabc123 westeurope"), "{stderr}");
    assert!(stderr.contains("az keyvault purge --name <name> --location <location>") && stderr.contains("--vault-name-salt"), "{stderr}");

    let (ok, _, stderr, _) = deploy_with_fake_az(dir.path(), &[], &[("DELETED_VAULT", "kvother"), ("DELETED_VAULT_GROUP", "rg-other")]);
    assert!(ok);
    assert!(!stderr.contains("kvother"), "another group's vault is not ours: {stderr}");

    let (ok, _, _, log) = deploy_with_fake_az(dir.path(), &["--vault-name-salt", "2"], &[]);
    assert!(ok);
    assert!(log.contains("--parameters vaultNameSalt=2"), "{log}");
}
