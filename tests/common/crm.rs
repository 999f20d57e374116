//! Strict loopback fakes of the four CRMs' documented endpoints (token flows, paths, methods,
//! headers, body shapes, error shapes), in the test process. Each keeps its records keyed as the
//! real CRM would (Dataverse by `leadid`, Salesforce by the external id, HubSpot contacts by
//! e-mail plus their notes, Marketo by e-mail), answers faults on demand, and notes every
//! deviation from the documented contract in `violations` (answered 400, as the CRM would).

use std::collections::{BTreeMap, HashSet, VecDeque};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Value};

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dynamics,
    Salesforce,
    HubSpot,
    Marketo,
}

impl Kind {
    pub fn channel(self) -> &'static str {
        match self {
            Kind::Dynamics => "Dynamics",
            Kind::Salesforce => "Salesforce",
            Kind::HubSpot => "HubSpot",
            Kind::Marketo => "Marketo",
        }
    }

    /// The field holding the company in this CRM's record.
    pub fn company_field(self) -> &'static str {
        match self {
            Kind::Dynamics => "companyname",
            Kind::Salesforce => "Company",
            Kind::HubSpot => "company",
            Kind::Marketo => "company",
        }
    }
}

/// What the next write call (the record itself) meets.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answered with this status before anything is written (`Retry-After` seconds).
    Status(u16, Option<u64>),
    /// The write is committed, then the answer is a 503: the answer is lost, not the write.
    CommitThen503,
    /// Every token issued so far is revoked; the call is answered 401 (Marketo: 602 in a 200).
    ExpireTokens,
    /// A validation error in the CRM's own shape (Marketo: a record-level `skipped`, 1003).
    Reject,
}

pub const REJECT_MESSAGE: &str = "Lead rejected by the org's validation rule Region_Required";

#[derive(Default)]
pub struct FakeState {
    pub tokens_issued: u32,
    valid: HashSet<String>,
    pub records: BTreeMap<String, Value>,
    /// HubSpot: (contact id, note properties).
    pub notes: Vec<(String, Value)>,
    pub violations: Vec<String>,
    pub faults: VecDeque<Fault>,
    /// Write calls answered with success.
    pub writes: u32,
    /// The CRM is down: every call, tokens included, is answered 503.
    pub down: bool,
    /// HubSpot: indexes into `notes` of the notes deleted (archived).
    pub deleted_notes: HashSet<usize>,
    /// Deletions answered with success (records, notes, people), in order: `kind id`.
    pub deletions: Vec<String>,
}

#[derive(Clone)]
pub struct FakeCrm {
    pub kind: Kind,
    pub base: String,
    pub state: Arc<Mutex<FakeState>>,
}

pub const CLIENT_ID: &str = "client-7f3a";
pub const CLIENT_SECRET: &str = "s3cr3t+&=/value";
pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const HUBSPOT_TOKEN: &str = "pat-na1-11111111-2222";

impl FakeCrm {
    pub async fn start(kind: Kind) -> FakeCrm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeCrm { kind, base, state: Arc::default() };
        let f = fake.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let f = f.clone();
            async move { f.handle(method, uri, headers, body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// The settings that point the handler at this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let (id, secret) = (CLIENT_ID.to_string(), CLIENT_SECRET.to_string());
        match self.kind {
            Kind::Dynamics => vec![
                ("DYNAMICS_URL", self.base.clone()),
                ("DYNAMICS_TENANT_ID", TENANT.into()),
                ("DYNAMICS_CLIENT_ID", id),
                ("DYNAMICS_CLIENT_SECRET", secret),
                ("DYNAMICS_AUTHORITY_HOST", self.base.clone()),
            ],
            Kind::Salesforce => {
                vec![("SALESFORCE_DOMAIN", self.base.clone()), ("SALESFORCE_CLIENT_ID", id), ("SALESFORCE_CLIENT_SECRET", secret)]
            }
            Kind::HubSpot => vec![("HUBSPOT_TOKEN", HUBSPOT_TOKEN.into()), ("HUBSPOT_BASE_URL", self.base.clone())],
            Kind::Marketo => vec![("MARKETO_BASE_URL", self.base.clone()), ("MARKETO_CLIENT_ID", id), ("MARKETO_CLIENT_SECRET", secret)],
        }
    }

    pub fn fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push_back(f);
    }

    pub fn records(&self) -> Vec<Value> {
        self.state.lock().unwrap().records.values().cloned().collect()
    }

    /// The notes not deleted.
    pub fn notes(&self) -> Vec<(String, Value)> {
        let st = self.state.lock().unwrap();
        st.notes.iter().enumerate().filter(|(i, _)| !st.deleted_notes.contains(i)).map(|(_, n)| n.clone()).collect()
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn deletions(&self) -> Vec<String> {
        self.state.lock().unwrap().deletions.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    pub fn tokens_issued(&self) -> u32 {
        self.state.lock().unwrap().tokens_issued
    }

    pub fn writes(&self) -> u32 {
        self.state.lock().unwrap().writes
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: String) -> (StatusCode, HeaderMap, String) {
        let mut st = self.state.lock().unwrap();
        let path = uri.path().to_string();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let violation = |st: &mut FakeState, what: String| {
            st.violations.push(what.clone());
            (StatusCode::BAD_REQUEST, HeaderMap::new(), json!({"error": {"code": "", "message": what}}).to_string())
        };

        if st.down {
            return (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), "Service Unavailable".into());
        }

        // Token endpoints.
        let token_path = match self.kind {
            Kind::Dynamics => Some(format!("/{TENANT}/oauth2/v2.0/token")),
            Kind::Salesforce => Some("/services/oauth2/token".to_string()),
            Kind::Marketo => Some("/identity/oauth/token".to_string()),
            Kind::HubSpot => None,
        };
        if token_path.as_deref() == Some(path.as_str()) {
            if method != Method::POST || !header("content-type").starts_with("application/x-www-form-urlencoded") {
                return violation(&mut st, format!("token: {method} with content-type {:?}", header("content-type")));
            }
            if uri.query().is_some_and(|q| q.contains("client_secret")) {
                return violation(&mut st, "token: the secret travelled in the URL".into());
            }
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let mut expected: BTreeMap<String, String> =
                [("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            if self.kind == Kind::Dynamics {
                expected.insert("scope".into(), format!("{}/.default", self.base));
            }
            if form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
                || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            {
                // The documented answer to wrong credentials.
                let status = if self.kind == Kind::Marketo { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
                st.violations.push("token: wrong client credentials".into());
                return (status, HeaderMap::new(), json!({"error": "invalid_client", "error_description": "bad credentials"}).to_string());
            }
            if form != expected {
                return violation(&mut st, format!("token: form {:?}", form.keys().collect::<Vec<_>>()));
            }
            st.tokens_issued += 1;
            let token = format!("tok-{}-{}", st.tokens_issued, uuid::Uuid::new_v4().simple());
            st.valid.insert(token.clone());
            let answer = match self.kind {
                Kind::Salesforce => json!({"access_token": token, "instance_url": self.base, "id": format!("{}/id/00D/005", self.base),
                                          "token_type": "Bearer", "issued_at": "1700000000000", "signature": "x", "scope": "api"}),
                Kind::Marketo => json!({"access_token": token, "token_type": "bearer", "expires_in": 3599, "scope": "apis@example.com"}),
                _ => json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
            };
            return (StatusCode::OK, HeaderMap::new(), answer.to_string());
        }

        // Every data call: a bearer token we issued, JSON in and out.
        let bearer = header("authorization").strip_prefix("Bearer ").map(str::to_string).unwrap_or_default();
        let authorized = match self.kind {
            Kind::HubSpot => bearer == HUBSPOT_TOKEN,
            _ => st.valid.contains(&bearer),
        };
        if !authorized {
            return self.unauthorized();
        }
        // Reads and deletes: no body, the query string as documented.
        if method == Method::GET || method == Method::DELETE {
            if !body.is_empty() || !header("content-type").is_empty() {
                return violation(&mut st, format!("{method} {path} with a body"));
            }
            return self.read_or_delete(&mut st, &method, &uri, &header);
        }
        if header("content-type") != "application/json" {
            return violation(&mut st, format!("{path}: content-type {:?}", header("content-type")));
        }
        let Ok(body) = serde_json::from_str::<Value>(&body) else { return violation(&mut st, format!("{path}: body is not JSON")) };

        match (self.kind, &method, path.as_str()) {
            (Kind::Dynamics, &Method::PATCH, p) if p.starts_with("/api/data/v9.2/leads(") && p.ends_with(')') => {
                let id = &p["/api/data/v9.2/leads(".len()..p.len() - 1];
                if uuid::Uuid::parse_str(id).is_err() {
                    return violation(&mut st, format!("leadid {id} is not a GUID"));
                }
                for (h, v) in
                    [("odata-version", "4.0"), ("odata-maxversion", "4.0"), ("accept", "application/json"), ("if-none-match", "*")]
                {
                    if header(h) != v {
                        return violation(&mut st, format!("header {h}: {:?}", header(h)));
                    }
                }
                if let Err(e) = check_shape(&body, DYNAMICS_FIELDS, &["subject", "lastname"]) {
                    return violation(&mut st, e);
                }
                if let Some(r) = self.fault_before_write(&mut st) {
                    return r;
                }
                if st.records.contains_key(id) {
                    let e = json!({"error": {"code": "0x80040237", "message": "A record with matching key values already exists."}});
                    return (StatusCode::PRECONDITION_FAILED, HeaderMap::new(), e.to_string());
                }
                let mut record = body;
                record["leadid"] = id.into();
                st.records.insert(id.to_string(), record);
                self.after_write(&mut st, StatusCode::NO_CONTENT, String::new())
            }
            (Kind::Salesforce, &Method::PATCH, p) if p.starts_with("/services/data/v60.0/sobjects/Lead/") => {
                let rest = &p["/services/data/v60.0/sobjects/Lead/".len()..];
                let Some(("MarketplaceLeadId__c", value)) = rest.split_once('/') else {
                    let e = json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]);
                    return (StatusCode::NOT_FOUND, HeaderMap::new(), e.to_string());
                };
                if let Err(e) = check_shape(&body, SALESFORCE_FIELDS, &["LastName", "Company"]) {
                    return violation(&mut st, e);
                }
                if let Some(r) = self.fault_before_write(&mut st) {
                    return r;
                }
                let created = !st.records.contains_key(value);
                let mut record = st.records.remove(value).unwrap_or(json!({"Id": format!("00Q{:012}", st.records.len() + 1)}));
                for (k, v) in body.as_object().unwrap() {
                    record[k] = v.clone();
                }
                record["MarketplaceLeadId__c"] = value.into();
                let answer = json!({"id": record["Id"], "success": true, "errors": [], "created": created}).to_string();
                st.records.insert(value.to_string(), record);
                self.after_write(&mut st, if created { StatusCode::CREATED } else { StatusCode::OK }, answer)
            }
            (Kind::HubSpot, &Method::POST, "/crm/v3/objects/contacts/batch/upsert") => {
                let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
                let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                if inputs.len() != 1 || keys != ["inputs"] {
                    return violation(&mut st, format!("upsert: {body}"));
                }
                let input = &inputs[0];
                let email = input["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                if input["idProperty"] != "email"
                    || email.is_empty()
                    || input["properties"]["email"].as_str().map(str::to_ascii_lowercase) != Some(email.clone())
                {
                    return violation(&mut st, format!("upsert input: {input}"));
                }
                if let Err(e) = check_shape(&input["properties"], HUBSPOT_CONTACT_FIELDS, &["email"]) {
                    return violation(&mut st, e);
                }
                let new = !st.records.contains_key(&email);
                let id = st.records.get(&email).map(|r| r["id"].clone()).unwrap_or_else(|| json!(format!("{}", 5000 + st.records.len())));
                let mut record = st.records.remove(&email).unwrap_or(json!({"id": id}));
                for (k, v) in input["properties"].as_object().unwrap() {
                    record[k] = v.clone();
                }
                st.records.insert(email, record.clone());
                let answer = json!({"status": "COMPLETE", "results": [{"id": id, "new": new, "properties": record}],
                                    "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:00Z"});
                (StatusCode::OK, HeaderMap::new(), answer.to_string())
            }
            (Kind::HubSpot, &Method::POST, "/crm/v3/objects/notes/search") => {
                let filters = body["filterGroups"][0]["filters"].as_array().cloned().unwrap_or_default();
                let mut contact = None;
                let mut token = None;
                for f in &filters {
                    match (f["propertyName"].as_str(), f["operator"].as_str(), f["value"].as_str()) {
                        (Some("associations.contact"), Some("EQ"), Some(v)) => contact = Some(v.to_string()),
                        (Some("hs_note_body"), Some("CONTAINS_TOKEN"), Some(v)) => token = Some(v.to_ascii_lowercase()),
                        _ => return violation(&mut st, format!("search filter {f}")),
                    }
                }
                let results: Vec<Value> = st
                    .notes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !st.deleted_notes.contains(i))
                    .filter(|(_, (c, _))| contact.as_ref().is_none_or(|x| x == c))
                    .filter(|(_, (_, n))| {
                        token.as_ref().is_none_or(|t| {
                            n["hs_note_body"]
                                .as_str()
                                .unwrap_or("")
                                .to_ascii_lowercase()
                                .split(|c: char| !c.is_ascii_alphanumeric())
                                .any(|w| w == t)
                        })
                    })
                    .map(|(i, (_, n))| json!({"id": format!("{}", 9000 + i), "properties": {"hs_note_body": n["hs_note_body"]}}))
                    .collect();
                (StatusCode::OK, HeaderMap::new(), json!({"total": results.len(), "results": results}).to_string())
            }
            (Kind::HubSpot, &Method::POST, "/crm/v3/objects/notes") => {
                let props = &body["properties"];
                if let Err(e) = check_shape(props, &[("hs_timestamp", 64), ("hs_note_body", 65_536)], &["hs_timestamp", "hs_note_body"]) {
                    return violation(&mut st, e);
                }
                let assoc = &body["associations"][0];
                let contact = assoc["to"]["id"].as_str().unwrap_or_default().to_string();
                if assoc["types"] != json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}])
                    || !st.records.values().any(|r| r["id"] == contact.as_str())
                {
                    return violation(&mut st, format!("note associations {}", body["associations"]));
                }
                if let Some(r) = self.fault_before_write(&mut st) {
                    return r;
                }
                st.notes.push((contact, props.clone()));
                let answer = json!({"id": format!("{}", 9000 + st.notes.len() - 1), "properties": props});
                self.after_write(&mut st, StatusCode::CREATED, answer.to_string())
            }
            (Kind::HubSpot, &Method::POST, "/crm/v3/objects/contacts/gdpr-delete") => {
                // {"objectId": "<id>"} or {"objectId": "<email>", "idProperty": "email"}; 204.
                let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                let object_id = body["objectId"].as_str().unwrap_or_default().to_string();
                let by_email = body.get("idProperty").is_some();
                if object_id.is_empty()
                    || keys.iter().any(|k| !["objectId", "idProperty"].contains(&k.as_str()))
                    || (by_email && body["idProperty"] != "email")
                {
                    return violation(&mut st, format!("gdpr-delete: {body}"));
                }
                let key = if by_email {
                    object_id.to_ascii_lowercase()
                } else {
                    st.records.iter().find(|(_, r)| r["id"] == object_id.as_str()).map(|(k, _)| k.clone()).unwrap_or_default()
                };
                if st.records.remove(&key).is_some() {
                    st.deletions.push(format!("contact {object_id}"));
                }
                (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
            }
            (Kind::Marketo, &Method::POST, "/rest/v1/leads/delete.json") => {
                let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                let input = body["input"].as_array().cloned().unwrap_or_default();
                if keys != ["input"] || input.is_empty() || input.iter().any(|i| !i["id"].is_u64() || i.as_object().unwrap().len() != 1) {
                    return violation(&mut st, format!("leads/delete: {body}"));
                }
                let mut result = Vec::new();
                for i in &input {
                    let id = i["id"].clone();
                    let key = st.records.iter().find(|(_, r)| r["id"] == id).map(|(k, _)| k.clone());
                    match key {
                        Some(k) => {
                            st.records.remove(&k);
                            st.deletions.push(format!("person {id}"));
                            result.push(json!({"id": id, "status": "deleted"}));
                        }
                        None => {
                            result.push(json!({"id": id, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]}))
                        }
                    }
                }
                (StatusCode::OK, HeaderMap::new(), json!({"requestId": "d1#2", "success": true, "result": result}).to_string())
            }
            (Kind::Marketo, &Method::POST, "/rest/v1/leads.json") => {
                let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                let input = body["input"].as_array().cloned().unwrap_or_default();
                if keys != ["action", "lookupField", "input"]
                    || body["action"] != "createOrUpdate"
                    || body["lookupField"] != "email"
                    || input.len() != 1
                {
                    return violation(&mut st, format!("sync: {body}"));
                }
                if let Err(e) = check_shape(&input[0], MARKETO_FIELDS, &["email"]) {
                    return violation(&mut st, e);
                }
                if let Some(r) = self.fault_before_write(&mut st) {
                    return r;
                }
                let email = input[0]["email"].as_str().unwrap().to_ascii_lowercase();
                let created = !st.records.contains_key(&email);
                let id = st.records.get(&email).map(|r| r["id"].clone()).unwrap_or_else(|| json!(100 + st.records.len()));
                let mut record = st.records.remove(&email).unwrap_or(json!({"id": id}));
                for (k, v) in input[0].as_object().unwrap() {
                    record[k] = v.clone();
                }
                st.records.insert(email, record);
                let answer = json!({"requestId": "e42b#14272d07d78", "success": true,
                                    "result": [{"id": id, "status": if created { "created" } else { "updated" }}]});
                self.after_write(&mut st, StatusCode::OK, answer.to_string())
            }
            _ => violation(&mut st, format!("unexpected {method} {path}")),
        }
    }

    /// The documented reads and deletes `leads forget` makes.
    fn read_or_delete(
        &self,
        st: &mut FakeState,
        method: &Method,
        uri: &Uri,
        header: &dyn Fn(&str) -> String,
    ) -> (StatusCode, HeaderMap, String) {
        let path = uri.path();
        let query: BTreeMap<String, String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        let violation = |st: &mut FakeState, what: String| {
            st.violations.push(what.clone());
            (StatusCode::BAD_REQUEST, HeaderMap::new(), json!({"error": {"code": "", "message": what}}).to_string())
        };
        match (self.kind, method, path) {
            (Kind::Dynamics, &Method::DELETE, p) if p.starts_with("/api/data/v9.2/leads(") && p.ends_with(')') => {
                let id = &p["/api/data/v9.2/leads(".len()..p.len() - 1];
                if uuid::Uuid::parse_str(id).is_err() || header("odata-version") != "4.0" || header("odata-maxversion") != "4.0" {
                    return violation(st, format!("DELETE {p}: not a GUID or OData headers missing"));
                }
                if st.records.remove(id).is_some() {
                    st.deletions.push(format!("lead {id}"));
                    (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
                } else {
                    let e = json!({"error": {"code": "0x80040217", "message": format!("lead With Id = {id} Does Not Exist")}});
                    (StatusCode::NOT_FOUND, HeaderMap::new(), e.to_string())
                }
            }
            (Kind::Salesforce, &Method::GET, "/services/data/v60.0/query") => {
                // Exactly the query forget makes: SELECT Id FROM Lead WHERE <field> = '<value>'.
                let q = query.get("q").cloned().unwrap_or_default();
                let Some(value) = q.strip_prefix("SELECT Id FROM Lead WHERE MarketplaceLeadId__c = '").and_then(|v| v.strip_suffix('\''))
                else {
                    let e = json!([{"message": format!("unexpected query {q}"), "errorCode": "MALFORMED_QUERY"}]);
                    st.violations.push(format!("query {q}"));
                    return (StatusCode::BAD_REQUEST, HeaderMap::new(), e.to_string());
                };
                let records: Vec<Value> = st
                    .records
                    .get(value)
                    .map(|r| json!({"attributes": {"type": "Lead", "url": format!("/services/data/v60.0/sobjects/Lead/{}", r["Id"].as_str().unwrap())}, "Id": r["Id"]}))
                    .into_iter()
                    .collect();
                (StatusCode::OK, HeaderMap::new(), json!({"totalSize": records.len(), "done": true, "records": records}).to_string())
            }
            (Kind::Salesforce, &Method::DELETE, p) if p.starts_with("/services/data/v60.0/sobjects/Lead/") => {
                let id = &p["/services/data/v60.0/sobjects/Lead/".len()..];
                if !(id.len() == 15 || id.len() == 18) || !id.starts_with("00Q") {
                    return violation(st, format!("DELETE Lead {id}: not a Lead Id"));
                }
                let key = st.records.iter().find(|(_, r)| r["Id"] == id).map(|(k, _)| k.clone());
                match key {
                    Some(k) => {
                        st.records.remove(&k);
                        st.deletions.push(format!("Lead {id}"));
                        (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
                    }
                    None => {
                        let e = json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]);
                        (StatusCode::NOT_FOUND, HeaderMap::new(), e.to_string())
                    }
                }
            }
            (Kind::HubSpot, &Method::DELETE, p) if p.starts_with("/crm/v3/objects/notes/") => {
                let id = &p["/crm/v3/objects/notes/".len()..];
                let index = id.parse::<usize>().ok().and_then(|n| n.checked_sub(9000)).filter(|i| *i < st.notes.len());
                match index {
                    Some(i) if !st.deleted_notes.contains(&i) => {
                        st.deleted_notes.insert(i);
                        st.deletions.push(format!("note {id}"));
                        (StatusCode::NO_CONTENT, HeaderMap::new(), String::new())
                    }
                    _ => {
                        let e = json!({"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"});
                        (StatusCode::NOT_FOUND, HeaderMap::new(), e.to_string())
                    }
                }
            }
            (Kind::HubSpot, &Method::GET, p) if p.starts_with("/crm/v3/objects/contacts/") => {
                if query.get("idProperty").map(String::as_str) != Some("email") {
                    return violation(st, format!("contact read without idProperty=email: {uri}"));
                }
                let email =
                    percent_encoding::percent_decode_str(&p["/crm/v3/objects/contacts/".len()..]).decode_utf8_lossy().to_ascii_lowercase();
                match st.records.get(&email) {
                    Some(r) => {
                        let answer = json!({"id": r["id"], "properties": {"email": r["email"], "hs_object_id": r["id"]},
                                            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": false});
                        (StatusCode::OK, HeaderMap::new(), answer.to_string())
                    }
                    None => {
                        let e = json!({"status": "error", "message": "Object not found.  objectId are usually numeric.", "category": "OBJECT_NOT_FOUND"});
                        (StatusCode::NOT_FOUND, HeaderMap::new(), e.to_string())
                    }
                }
            }
            (Kind::Marketo, &Method::GET, "/rest/v1/leads.json") => {
                if query.get("filterType").map(String::as_str) != Some("email") || !query.contains_key("filterValues") {
                    return violation(st, format!("leads.json query {query:?}"));
                }
                let wanted: Vec<String> = query["filterValues"].split(',').map(str::to_ascii_lowercase).collect();
                let result: Vec<Value> = wanted.iter().filter_map(|e| st.records.get(e)).map(|r| json!({"id": r["id"]})).collect();
                (StatusCode::OK, HeaderMap::new(), json!({"requestId": "r#1", "success": true, "result": result}).to_string())
            }
            _ => violation(st, format!("unexpected {method} {path}")),
        }
    }

    fn unauthorized(&self) -> (StatusCode, HeaderMap, String) {
        let body = match self.kind {
            Kind::Dynamics => json!({"error": {"code": "", "message": "ExpiredAuthTicket"}}),
            Kind::Salesforce => json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
            Kind::HubSpot => {
                json!({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION", "correlationId": "c"})
            }
            // Marketo answers token errors inside HTTP 200.
            Kind::Marketo => {
                return (
                    StatusCode::OK,
                    HeaderMap::new(),
                    json!({"requestId": "r", "success": false, "errors": [{"code": "602", "message": "Access token expired"}]}).to_string(),
                )
            }
        };
        (StatusCode::UNAUTHORIZED, HeaderMap::new(), body.to_string())
    }

    /// The scripted fault for this write, if it stops the write.
    fn fault_before_write(&self, st: &mut FakeState) -> Option<(StatusCode, HeaderMap, String)> {
        match st.faults.front().copied()? {
            Fault::Status(status, retry_after) => {
                st.faults.pop_front();
                let mut h = HeaderMap::new();
                if let Some(s) = retry_after {
                    h.insert("retry-after", s.to_string().parse().unwrap());
                }
                Some((StatusCode::from_u16(status).unwrap(), h, json!({"error": {"code": "", "message": "try later"}}).to_string()))
            }
            Fault::ExpireTokens => {
                st.faults.pop_front();
                st.valid.clear();
                Some(self.unauthorized())
            }
            Fault::Reject => {
                st.faults.pop_front();
                let (status, body) = match self.kind {
                    Kind::Dynamics => (400, json!({"error": {"code": "0x80040203", "message": REJECT_MESSAGE}})),
                    Kind::Salesforce => {
                        (400, json!([{"message": REJECT_MESSAGE, "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": []}]))
                    }
                    Kind::HubSpot => {
                        (400, json!({"status": "error", "message": REJECT_MESSAGE, "category": "VALIDATION_ERROR", "correlationId": "c"}))
                    }
                    Kind::Marketo => (
                        200,
                        json!({"requestId": "r", "success": true, "result": [{"status": "skipped", "reasons": [{"code": "1003", "message": REJECT_MESSAGE}]}]}),
                    ),
                };
                Some((StatusCode::from_u16(status).unwrap(), HeaderMap::new(), body.to_string()))
            }
            Fault::CommitThen503 => None,
        }
    }

    fn after_write(&self, st: &mut FakeState, status: StatusCode, answer: String) -> (StatusCode, HeaderMap, String) {
        if matches!(st.faults.front(), Some(Fault::CommitThen503)) {
            st.faults.pop_front();
            return (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), "upstream timed out".into());
        }
        st.writes += 1;
        let mut h = HeaderMap::new();
        if self.kind == Kind::Dynamics {
            h.insert("odata-entityid", format!("{}/api/data/v9.2/leads(x)", self.base).parse().unwrap());
        }
        (status, h, answer)
    }
}

/// (field, max length; 0 = boolean, 1 = integer).
const DYNAMICS_FIELDS: &[(&str, usize)] = &[
    ("subject", 300),
    ("firstname", 50),
    ("lastname", 50),
    ("emailaddress1", 100),
    ("telephone1", 50),
    ("companyname", 100),
    ("jobtitle", 100),
    ("address1_country", 80),
    ("description", 2000),
    ("leadsourcecode", 1),
    ("donotemail", 0),
    ("donotbulkemail", 0),
    ("donotphone", 0),
];
const SALESFORCE_FIELDS: &[(&str, usize)] = &[
    ("FirstName", 40),
    ("LastName", 80),
    ("Company", 255),
    ("Email", 80),
    ("Phone", 40),
    ("Title", 128),
    ("Description", 32000),
    ("LeadSource", 255),
    ("HasOptedOutOfEmail", 0),
    ("DoNotCall", 0),
];
const HUBSPOT_CONTACT_FIELDS: &[(&str, usize)] = &[
    ("email", 65_536),
    ("firstname", 65_536),
    ("lastname", 65_536),
    ("phone", 65_536),
    ("company", 65_536),
    ("jobtitle", 65_536),
    ("country", 65_536),
];
const MARKETO_FIELDS: &[(&str, usize)] = &[
    ("email", 255),
    ("firstName", 255),
    ("lastName", 255),
    ("phone", 255),
    ("company", 255),
    ("title", 255),
    ("country", 255),
    ("unsubscribed", 0),
    ("unsubscribedReason", 512),
    ("doNotCall", 0),
    ("doNotCallReason", 512),
];

/// Unknown fields, wrong types, lengths over the CRM's limits (UTF-16 units, as .NET and Java
/// count) and missing required fields are all rejected.
fn check_shape(v: &Value, fields: &[(&str, usize)], required: &[&str]) -> Result<(), String> {
    let obj = v.as_object().ok_or("not an object")?;
    for (k, val) in obj {
        let Some((_, max)) = fields.iter().find(|(f, _)| f == k) else { return Err(format!("unknown field {k}")) };
        match (*max, val) {
            (0, Value::Bool(_)) | (1, Value::Number(_)) => {}
            (m, Value::String(s)) if m > 1 && s.encode_utf16().count() <= m => {}
            _ => return Err(format!("field {k}: wrong type or longer than {max}")),
        }
    }
    for r in required {
        if obj.get(*r).and_then(Value::as_str).is_none_or(|s| s.is_empty()) {
            return Err(format!("required field {r} missing"));
        }
    }
    Ok(())
}
