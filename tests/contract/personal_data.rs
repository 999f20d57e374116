//! Personal data on request, end to end on a real Azurite with the real binary:
//! `handler leads forget` removes exactly one customer everywhere, and `LEADS_RETENTION_DAYS`
//! makes LeadNotify delete old leads (with their index entries) once a day.

use std::process::Stdio;

use crate::common::leads::*;
use crate::common::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use marketplace_leads::entity::{get_str, put_datetime, Entity};
use marketplace_leads::lead::{partition_key_for, CustomerId, DedupeKey, Lead};
use marketplace_leads::notify::journey::Journey;
use marketplace_leads::store::{RetryPolicy, StorageAccount, TableClient};
use serde_json::{json, Value};

/// A row as Microsoft's "Azure Table" destination writes it, with the contact in `CustomerInfo`.
async fn insert_microsoft_row(table: &str, email: &str, date: NaiveDate, extra: Value) -> (String, String) {
    let pk = partition_key_for(date);
    let rk = uuid::Uuid::new_v4().to_string();
    let info = json!({"FirstName": "Ana", "LastName": "Silva", "Email": email, "Country": "PT", "Company": "Northwind Lda"});
    let mut entity: Entity = serde_json::from_value(json!({
        "PartitionKey": pk, "RowKey": rk, "ActionCode": "INS", "CustomerInfo": info.to_string(), "Description": "",
        "LeadSource": "AzurePortal-Create|northwind.northwind-saas", "OfferDisplayName": "Northwind SaaS"
    }))
    .unwrap();
    if let Value::Object(extra) = extra {
        entity.extend(extra);
    }
    table_client(table).insert(&entity).await.unwrap();
    (pk, rk)
}

/// Indexes a stored lead as the notifier does.
async fn index(table: &str, pk: &str, rk: &str) {
    let lead = Lead::from_entity(&row(table, pk, rk).await);
    let customer = lead.customer_id().expect("a customer");
    Journey::new(&table_client(table)).record(&customer, &lead, pk, rk).await.unwrap();
}

async fn index_entries(table: &str, email: &str) -> usize {
    Journey::new(&table_client(table)).entries(&CustomerId::for_email(email).unwrap()).await.unwrap().len()
}

async fn all_rows(table: &str) -> Vec<Entity> {
    table_client(table).query(&marketplace_leads::store::Query::all(), usize::MAX).await.unwrap()
}

fn body(email: &str, action: &str) -> String {
    json!({"UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": email, "Company": "Contoso s.r.o.", "Country": "CZ"},
           "LeadSource": format!("SPZA-{action}|contoso.contoso-analytics"), "ActionCode": action, "OfferTitle": "Contoso Analytics"})
    .to_string()
}

fn forget(table: &str, args: &[&str]) -> (bool, String, String) {
    let out = handler_command(&base_env(table)).args(["leads", "forget"]).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_removes_one_customer_everywhere_and_nothing_else() {
    let table = unique_table();
    let t = tag().to_lowercase();
    let jana = format!("jana.{t}@contoso.example");
    let ana = format!("ana.{t}@northwind.example");
    let h = spawn_handler(Mode::Host, &base_env(&table)).await;

    // Jana through both routes, plus a lead nobody could parse that carries her address.
    let (p1, r1) = ingest(&h, body(&jana, "PLT")).await;
    let (p2, r2) = ingest(&h, body(&jana.to_uppercase(), "INS")).await;
    let today = Utc::now().date_naive();
    let (p3, r3) = insert_microsoft_row(&table, &format!(" Jana.{t}@Contoso.Example"), today, json!({})).await;
    // Unparsed, its own address written with a JSON escape.
    let raw = format!(r#"{{"someNewSchema": {{"email": "jana.{t}\u0040contoso.example"}}, "note": "call back"}}"#);
    ingest(&h, raw).await;
    // Ana, the other customer: she must keep everything.
    let (p4, r4) = ingest(&h, body(&ana, "PLT")).await;
    let (p5, r5) = insert_microsoft_row(&table, &ana, today, json!({})).await;
    // Bob and Eva merely mention Jana: they keep their leads, without her address.
    let bob = format!("bob.{t}@fabrikam.example");
    let mut bob_body: Value = serde_json::from_str(&body(&bob, "PLT")).unwrap();
    bob_body["Description"] = format!("cc my colleague JANA.{t}@contoso.example").into();
    let (p6, r6) = ingest(&h, bob_body.to_string()).await;
    let (p7, r7) = insert_microsoft_row(&table, &format!("eva.{t}@x.example; {jana}"), today, json!({})).await;
    for (pk, rk) in [(&p1, &r1), (&p2, &r2), (&p3, &r3), (&p4, &r4), (&p5, &r5)] {
        index(&table, pk, rk).await;
    }
    // The notifier's state table holds no customer's details by design; a relay answer that
    // echoed the address would still be blanked.
    let state = table_client(&format!("{table}Notify"));
    let digest: Entity = serde_json::from_value(json!({"PartitionKey": "digest", "RowKey": "2026-01-01T08:00:00Z", "State": "failed",
        "LastError": format!("550 5.1.1 <{jana}>: recipient rejected"), "Leads": 3}))
    .unwrap();
    state.upsert(&digest).await.unwrap();
    let unparsed = all_rows(&table).await.into_iter().filter(|r| r.get("Parsed") == Some(&Value::Bool(false))).count();
    assert_eq!((all_rows(&table).await.len(), unparsed), (8, 1));
    assert_eq!((index_entries(&table, &jana).await, index_entries(&table, &ana).await), (3, 2));

    // Without --yes and without a terminal: refused, nothing removed.
    let (ok, out, err) = forget(&table, &[&jana.to_uppercase()]);
    assert!(!ok && err.contains("--yes") && err.contains("nothing removed"), "{out}\n{err}");
    assert!(out.contains("6 lead row(s)") && out.contains("4 to delete") && out.contains("2 to redact"), "the plan is shown first: {out}");
    assert!(out.contains("3 journey-index"), "{out}");
    assert_eq!(out.matches("    delete  ").count(), 4, "{out}");
    assert_eq!(out.matches("    redact  ").count(), 2, "{out}");
    assert!(!out.contains('@'), "the plan shows no address at all: {out}");
    assert_eq!(all_rows(&table).await.len(), 8);
    assert_eq!(index_entries(&table, &jana).await, 3);

    let (ok, out, err) = forget(&table, &[&jana.to_uppercase(), "--yes"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Deleted 4 lead row(s); redacted the address in 2 other lead row(s); removed 3 journey-index"), "{out}");
    assert!(out.contains("1 notifier state row(s)") && out.contains("Partner Center"), "{out}");
    assert!(!out.to_lowercase().contains(&ana), "no other customer's data is shown: {out}");
    assert!(!err.to_lowercase().contains(&jana), "the address is not logged: {err}");

    // Ana keeps her rows and entries; Bob and Eva keep theirs, the address replaced.
    let left = all_rows(&table).await;
    let keys: Vec<(String, String)> = left.iter().map(|r| (get_str(r, "PartitionKey").into(), get_str(r, "RowKey").into())).collect();
    assert_eq!(keys.len(), 4);
    assert!(keys.contains(&(p4, r4)) && keys.contains(&(p5, r5)) && keys.contains(&(p6.clone(), r6.clone())));
    assert!(keys.contains(&(p7.clone(), r7.clone())));
    assert_eq!((index_entries(&table, &jana).await, index_entries(&table, &ana).await), (0, 2));
    let bob_row = row(&table, &p6, &r6).await;
    assert_eq!(get_str(&bob_row, "Description"), "cc my colleague [forgotten address]");
    assert_eq!(get_str(&bob_row, "Email"), bob);
    let eva_row = row(&table, &p7, &r7).await;
    assert!(get_str(&eva_row, "CustomerInfo").contains(&format!("eva.{t}@x.example; [forgotten address]")), "{eva_row:?}");
    let (kept, _) = state.get("digest", "2026-01-01T08:00:00Z").await.unwrap().unwrap();
    assert_eq!(
        (get_str(&kept, "State"), get_str(&kept, "LastError")),
        ("failed", "550 5.1.1 <[forgotten address]>: recipient rejected"),
        "the digest row stays, redacted"
    );

    // Every table this deployment has in the account (the lead table and every table named
    // after it), read in full: the address is nowhere. Other tests' tables share this Azurite
    // and are none of this run's business.
    let tables: Vec<String> = TableClient::new(StorageAccount::azurite(azurite_port()), &table, RetryPolicy::default())
        .unwrap()
        .list_tables()
        .await
        .unwrap()
        .into_iter()
        .filter(|name| name.starts_with(&table))
        .collect();
    for name in [table.clone(), format!("{table}Customers"), format!("{table}Notify")] {
        assert!(tables.contains(&name), "{name} listed");
    }
    for name in &tables {
        for e in all_rows(name).await {
            let text = Value::Object(e).to_string().to_lowercase();
            assert!(!text.contains(&jana), "{name} still names the customer: {text}");
        }
    }

    // Forgetting again finds nothing and says so.
    let (ok, out, _) = forget(&table, &[&jana, "--yes"]);
    assert!(ok && out.contains("nothing removed"), "{out}");
    let (ok, _, err) = forget(&table, &["not-an-address", "--yes"]);
    assert!(!ok && err.contains("not an e-mail address"), "{err}");
}

/// A lead stored as LeadIngest stores it, created at `at`, with the webhook channel `state`.
async fn seed(table: &str, email: &str, at: DateTime<Utc>, state: Option<&str>) -> (String, String) {
    let raw = body(email, "PLT");
    let (lead, payload) = Lead::from_payload(raw.as_bytes()).unwrap();
    let mut e = lead.to_entity(&DedupeKey::new(&payload, at), at, &raw);
    if let Some(s) = state {
        e.insert("NotifyWebhookState".into(), s.into());
    }
    table_client(table).insert(&e).await.unwrap();
    (get_str(&e, "PartitionKey").to_string(), get_str(&e, "RowKey").to_string())
}

fn notify(env: &[(&'static str, String)]) -> Value {
    let out = handler_command(env).arg("notify").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test]
async fn retention_deletes_old_leads_with_their_index_once_a_day() {
    let table = unique_table();
    let t = tag().to_lowercase();
    let now = Utc::now();
    let old = now - Duration::days(100);
    let email = |n: &str| format!("{n}.{t}@contoso.example");

    let gone_ingested = seed(&table, &email("a"), old, Some("delivered")).await;
    let gone_native = insert_microsoft_row(
        &table,
        &email("b"),
        old.date_naive(),
        json!({"CreatedTime": old.to_rfc3339(), "NotifyWebhookState": "failed"}),
    )
    .await;
    // No CreatedTime at all: aged by its date partition.
    let gone_by_partition = insert_microsoft_row(&table, &email("c"), old.date_naive(), json!({"NotifyWebhookState": "delivered"})).await;
    let kept_pending = seed(&table, &email("d"), old - Duration::hours(1), None).await;
    let kept_recent = seed(&table, &email("e"), now - Duration::days(1), Some("delivered")).await;
    for (pk, rk) in [&gone_ingested, &gone_native, &gone_by_partition, &kept_pending, &kept_recent] {
        index(&table, pk, rk).await;
    }
    // An index entry whose lead is already gone.
    let mut orphan = Entity::new();
    orphan.insert("PartitionKey".into(), CustomerId::for_email(&email("f")).unwrap().as_str().into());
    orphan.insert("RowKey".into(), "lead_0123456789abcdef01234567".into());
    put_datetime(&mut orphan, "CreatedTime", old);
    table_client(&format!("{table}Customers")).upsert(&orphan).await.unwrap();

    // The webhook is misconfigured (plain http to a remote host): its leads stay pending, and
    // one of them is old.
    let mut env = base_env(&table);
    env.push(("LEADS_RETENTION_DAYS", "30".into()));
    let mut with_channel = env.clone();
    with_channel.push(("NOTIFY_WEBHOOK_URL", "http://hooks.example/lead".into()));
    with_channel.push(("NOTIFY_WEBHOOK_SECRET", SECRET.into()));
    // Every row here was written just now (Azurite sets `Timestamp`; it cannot be backdated), so
    // none is deleted whatever its CreatedTime says: a row is kept the full setting after its
    // write. Deleting old rows is tested in process (`notify::logic_tests`), where the clock moves.
    let report = notify(&with_channel);
    assert_eq!(
        (&report["retention_deleted"], &report["retention_index_deleted"], &report["errors"]),
        (&json!(0), &json!(1), &json!(0)),
        "{report}"
    );
    let keys: Vec<(String, String)> =
        all_rows(&table).await.iter().map(|r| (get_str(r, "PartitionKey").into(), get_str(r, "RowKey").into())).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for key in [&gone_ingested, &gone_native, &gone_by_partition, &kept_pending, &kept_recent] {
        assert!(keys.contains(key));
    }
    for (n, entries) in [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1), ("f", 0)] {
        assert_eq!(index_entries(&table, &email(n)).await, entries, "{n}");
    }

    // Later the same day: one state read, nothing more deleted (even a newly old lead waits).
    seed(&table, &email("g"), old, Some("delivered")).await;
    let report = notify(&env);
    assert_eq!((&report["retention_deleted"], &report["transactions"]), (&json!(0), &json!(1)), "{report}");
    assert_eq!(all_rows(&table).await.len(), 6);

    // Without the setting nothing is ever deleted.
    let report = notify(&base_env(&table));
    assert_eq!((&report["retention_deleted"], &report["transactions"]), (&json!(0), &json!(0)), "{report}");
}

#[tokio::test]
async fn retention_keeps_what_the_digest_has_still_to_list() {
    let t = tag().to_lowercase();
    let now = Utc::now();
    let email = |n: &str| format!("{n}.{t}@contoso.example");
    // A weekly digest whose tick was three days ago, at midnight: the period open since then
    // has yet to be listed, whatever LEADS_RETENTION_DAYS says.
    let tick = (now.date_naive() - chrono::Days::new(3)).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let schedule = format!("0 0 0 * * {}", chrono::Datelike::weekday(&tick).num_days_from_sunday());
    let env = |table: &str| {
        let mut env = base_env(table);
        env.extend([
            ("LEADS_RETENTION_DAYS", "1".to_string()),
            ("NOTIFY_DIGEST_TO", format!("retention-{t}@example.com")),
            ("NOTIFY_DIGEST_SCHEDULE", schedule.clone()),
            ("NOTIFY_DIGEST_DELAY_SECONDS", "0".into()),
            ("NOTIFY_EMAIL_FROM", "leads@example.com".into()),
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp_port().to_string()),
            ("SMTP_SECURITY", "none".into()),
        ]);
        env
    };
    let keys = |rows: Vec<Entity>| -> Vec<(String, String)> {
        rows.iter().map(|r| (get_str(r, "PartitionKey").to_string(), get_str(r, "RowKey").to_string())).collect()
    };

    // The week's digest went out, and nothing is deleted: the rows were written just now (see
    // above; the digest's hold on retention is tested in process, `notify::logic_tests`).
    let table = unique_table();
    seed(&table, &email("a"), tick + Duration::hours(1), Some("delivered")).await;
    seed(&table, &email("b"), tick - Duration::hours(1), Some("delivered")).await;
    let report = notify(&env(&table));
    assert_eq!((&report["retention_deleted"], &report["errors"], &report["digest"]["sent"]), (&json!(0), &json!(0), &json!(1)), "{report}");
    assert_eq!(keys(all_rows(&table).await).len(), 2);

    // A digest still pending (its relay refused it) keeps its whole period.
    let table = unique_table();
    let mut pending = Entity::new();
    pending.insert("PartitionKey".into(), "digest".into());
    pending.insert("RowKey".into(), (tick - Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into());
    pending.insert("State".into(), "pending".into());
    put_datetime(&mut pending, "PeriodStart", tick - Duration::days(14));
    put_datetime(&mut pending, "NextAttempt", now + Duration::days(1));
    table_client(&format!("{table}Notify")).upsert(&pending).await.unwrap();
    seed(&table, &email("c"), tick - Duration::days(10), Some("delivered")).await;
    seed(&table, &email("d"), tick - Duration::days(15), Some("delivered")).await;
    let report = notify(&env(&table));
    assert_eq!((&report["retention_deleted"], &report["errors"]), (&json!(0), &json!(0)), "{report}");
    assert_eq!(keys(all_rows(&table).await).len(), 2);
}

/// Runs `handler leads forget` with CRM settings.
fn forget_with(env: &[(&'static str, String)], args: &[&str]) -> (bool, String, String) {
    let out = handler_command(env).args(["leads", "forget"]).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_reaches_the_crms_and_reports_what_a_crm_that_is_down_left() {
    use crate::common::crm::{FakeCrm, Kind};
    let table = unique_table();
    let t = tag().to_lowercase();
    let jana = format!("jana.{t}@contoso.example");
    let ana = format!("ana.{t}@northwind.example");
    let fakes = [
        FakeCrm::start(Kind::Dynamics).await,
        FakeCrm::start(Kind::Salesforce).await,
        FakeCrm::start(Kind::HubSpot).await,
        FakeCrm::start(Kind::Marketo).await,
    ];
    let [dynamics, salesforce, hubspot, marketo] = &fakes;
    let mut env = base_env(&table);
    for f in &fakes {
        env.extend(f.env());
    }
    let h = spawn_handler(Mode::Host, &env).await;
    ingest(&h, body(&jana, "PLT")).await;
    ingest(&h, body(&ana, "PLT")).await;
    for _ in 0..2 {
        timer_ok(&h).await;
    }
    for f in &fakes {
        assert_eq!(f.records().len(), 2, "{:?}: both leads delivered", f.kind);
    }
    assert_eq!(hubspot.notes().len(), 2);

    // Salesforce is down: everything else is done, Salesforce's Lead is reported left, the exit
    // code says so, and nothing claims a Salesforce deletion.
    salesforce.set_down(true);
    let (ok, out, err) = forget_with(&env, &[&jana, "--yes"]);
    assert!(!ok, "something is left: {out}\n{err}");
    assert!(out.contains("LEFT") && out.contains("Salesforce Lead of lead_"), "{out}");
    assert!(out.contains("Salesforce: deleted 0 Lead record(s) this app created so far; NOT all reached"), "{out}");
    assert!(out.contains("Dynamics 365: deleted 1 lead row(s)") && out.contains("HubSpot: deleted 1 note(s)"), "{out}");
    assert!(out.contains("NOT erased") && out.contains("gdpr-delete") && out.contains("NOT deleted"), "people are listed: {out}");
    assert!(!out.to_lowercase().contains(&ana), "{out}");
    assert!(!err.to_lowercase().contains(&jana), "the address is not logged: {err}");
    assert_eq!((dynamics.records().len(), hubspot.notes().len(), salesforce.records().len()), (1, 1, 2));
    assert_eq!((hubspot.records().len(), marketo.records().len()), (2, 2), "people are only listed without the flag");
    assert!(all_rows(&table).await.iter().all(|r| !Value::Object(r.clone()).to_string().contains(&jana)), "the table is clean");
    assert_eq!(index_entries(&table, &jana).await, 1, "the deleted lead's entry stays until its CRM records are gone");

    // Back up: a second run finishes the job; with the flag, the people are erased too.
    salesforce.set_down(false);
    let (ok, out, err) = forget_with(&env, &[&jana, "--yes", "--erase-crm-people"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Salesforce: deleted 1 Lead record(s)"), "{out}");
    assert!(out.contains("erased with HubSpot's GDPR delete") && out.contains("Marketo: person"), "{out}");
    for f in &fakes {
        assert_eq!(f.records().len(), 1, "{:?}: only Ana's record is left", f.kind);
        let left = Value::Array(f.records()).to_string().to_lowercase();
        assert!(left.contains(&ana) || f.kind == Kind::Salesforce || f.kind == Kind::Dynamics, "{left}");
        assert!(!left.contains(&jana), "{:?} still names the customer: {left}", f.kind);
        assert!(f.violations().is_empty(), "{:?}: {:?}", f.kind, f.violations());
    }
    assert_eq!(hubspot.notes().len(), 1);
    assert_eq!(index_entries(&table, &jana).await, 0);

    // A third run: nothing left anywhere, and it says so without failing.
    let (ok, out, _) = forget_with(&env, &[&jana, "--yes"]);
    assert!(ok && out.contains("Deleted 0 lead row(s)") && out.contains("no contact with this address"), "{out}");
}
