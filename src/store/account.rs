//! Where the table service is and how to sign for it: Azure Storage connection strings
//! (including `UseDevelopmentStorage=true`, which clients must expand themselves) and the
//! SharedKey signature of the Table service.

use std::collections::HashMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::token::{IdentityKind, TokenSource};

/// Azurite's documented, public development account and key: not secrets.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The storage account of the lead table.
#[derive(Debug, Clone)]
pub struct StorageAccount {
    pub name: String,
    /// Base URL of the table service, e.g. `https://acct.table.core.windows.net` or
    /// `http://127.0.0.1:10002/devstoreaccount1` (path style, as Azurite uses).
    pub table_endpoint: String,
    pub(crate) credential: Credential,
}

#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// Microsoft Entra ID tokens (no key anywhere); `setting` names the settings that chose it,
    /// for error messages.
    Bearer { source: TokenSource, setting: String },
    /// The account key, decoded once when the connection string is read.
    SharedKey(SharedKey),
    /// A SAS token (without the leading `?`), appended to every request.
    Sas(SecretString),
}

/// A decoded, non-empty account key.
#[derive(Debug)]
pub(crate) struct SharedKey(SecretSlice<u8>);

impl Clone for SharedKey {
    fn clone(&self) -> Self {
        SharedKey(self.0.expose_secret().to_vec().into())
    }
}

impl SharedKey {
    fn decode(b64: &str) -> Result<Self, String> {
        let key = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "AccountKey is not base64")?;
        if key.is_empty() {
            return Err("AccountKey is empty".into());
        }
        Ok(SharedKey(key.into()))
    }

    /// The `Authorization` value for the Table service's SharedKey scheme: HMAC-SHA256 over
    /// VERB, Content-MD5 (empty), Content-Type, Date, and the canonical resource
    /// `/<account><url path>` (for path-style emulator URLs the path already holds the account
    /// name, so Azurite's resource names it twice, as it expects).
    pub(crate) fn authorization(&self, account: &str, method: &str, content_type: &str, date: &str, url_path: &str) -> String {
        let to_sign = format!("{method}\n\n{content_type}\n{date}\n/{account}{url_path}");
        // HMAC takes keys of any length; the key is checked non-empty when decoded.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.0.expose_secret()).expect("HMAC accepts any key length");
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {account}:{sig}")
    }
}

impl StorageAccount {
    /// Parses an Azure Storage connection string. The error never repeats the input, which holds
    /// the account key.
    pub fn from_connection_string(conn: &str) -> Result<Self, String> {
        let mut parts = HashMap::new();
        for part in conn.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or("connection string parts look like Name=value")?;
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        if parts.get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let host = parts.get("developmentstorageproxyuri").map(|u| u.trim_end_matches('/').to_string());
            let base = host.unwrap_or_else(|| "http://127.0.0.1".into());
            return Ok(StorageAccount {
                name: DEV_ACCOUNT.into(),
                table_endpoint: format!("{base}:10002/{DEV_ACCOUNT}"),
                credential: Credential::SharedKey(SharedKey::decode(DEV_KEY)?),
            });
        }
        let name = parts.get("accountname").cloned();
        let credential = match (parts.get("accountkey"), parts.get("sharedaccesssignature")) {
            (Some(key), _) => Credential::SharedKey(SharedKey::decode(key)?),
            (None, Some(sas)) => Credential::Sas(sas.trim_start_matches('?').to_string().into()),
            (None, None) => return Err("needs AccountKey or SharedAccessSignature".into()),
        };
        let table_endpoint = match parts.get("tableendpoint") {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let name = name.as_deref().ok_or("needs AccountName or TableEndpoint")?;
                let protocol = parts.get("defaultendpointsprotocol").map(String::as_str).unwrap_or("https");
                let suffix = parts.get("endpointsuffix").map(String::as_str).unwrap_or("core.windows.net");
                format!("{protocol}://{name}.table.{suffix}")
            }
        };
        let name = match name {
            Some(n) => n,
            None => url::Url::parse(&table_endpoint)
                .ok()
                .and_then(|u| u.host_str().and_then(|h| h.split('.').next()).map(str::to_string))
                .ok_or("cannot tell the account name")?,
        };
        if matches!(credential, Credential::SharedKey(_)) && name.is_empty() {
            return Err("AccountName is empty".into());
        }
        Ok(StorageAccount { name, table_endpoint, credential })
    }

    /// A keyless account: the Functions identity-based connection settings
    /// (`<prefix>__tableServiceUri` or `<prefix>__accountName`, with `__credential` /
    /// `__clientId`). Tokens come from the managed identity or the Azure CLI.
    pub fn with_identity(prefix: &str, table_endpoint: &str, kind: IdentityKind) -> Result<Self, String> {
        let endpoint = table_endpoint.trim_end_matches('/').to_string();
        let url = url::Url::parse(&endpoint).map_err(|_| format!("{prefix}__tableServiceUri is not a URL"))?;
        if url.scheme() != "https" {
            // Bearer tokens are refused over plain HTTP by the service (and must not travel so).
            return Err(format!("{prefix}__tableServiceUri must be https:// (tokens never travel in clear)"));
        }
        let name = match url.path().trim_matches('/') {
            "" => url.host_str().and_then(|h| h.split('.').next()).unwrap_or_default().to_string(),
            path_style => path_style.to_string(),
        };
        let http = crate::net::client_builder()?
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let setting = match &kind {
            IdentityKind::ManagedIdentity { .. } => format!("{prefix}__credential=managedidentity"),
            _ => format!("{prefix}__accountName / __tableServiceUri (no __credential: managed identity in Azure, else `az login`)"),
        };
        let source = TokenSource::new(kind, http).map_err(|e| e.to_string())?;
        Ok(StorageAccount { name, table_endpoint: endpoint, credential: Credential::Bearer { source, setting } })
    }

    /// The token source of a keyless account (tests count its fetches).
    pub fn token_source(&self) -> Option<&TokenSource> {
        match &self.credential {
            Credential::Bearer { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Azurite's development account on `127.0.0.1:<port>` (tests, benchmarks, `scripts/dev`).
    pub fn azurite(port: u16) -> Self {
        Self::from_connection_string(&azurite_connection_string(port)).expect("the development connection string parses")
    }
}

/// The connection string of Azurite's development account on `127.0.0.1:<port>`.
pub fn azurite_connection_string(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_expands_to_azurite() {
        let a = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(a.name, "devstoreaccount1");
        assert_eq!(a.table_endpoint, "http://127.0.0.1:10002/devstoreaccount1");
    }

    #[test]
    fn azure_connection_string() {
        let a = StorageAccount::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=leadsacct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(a.table_endpoint, "https://leadsacct.table.core.windows.net");
        let e = StorageAccount::from_connection_string("AccountName=x;AccountKey=%%%notbase64").unwrap_err();
        assert!(!e.contains("notbase64"));
    }

    #[test]
    fn an_empty_key_is_refused_not_signed_with() {
        let e = StorageAccount::from_connection_string("AccountName=x;AccountKey=").unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn explicit_table_endpoint_for_azurite_on_another_port() {
        let a = StorageAccount::azurite(12345);
        assert_eq!(a.table_endpoint, "http://127.0.0.1:12345/devstoreaccount1");
    }

    #[test]
    fn shared_key_signature_known_answer() {
        // Computed independently (Python's hmac over the same string-to-sign with the
        // development key): VERB, empty Content-MD5, Content-Type, Date, canonical resource.
        let key = SharedKey::decode(DEV_KEY).unwrap();
        let auth =
            key.authorization("devstoreaccount1", "POST", "application/json", "Mon, 23 Nov 2026 10:00:00 GMT", "/devstoreaccount1/Tables");
        assert_eq!(auth, "SharedKey devstoreaccount1:jsmJynT3sv7i9umHXXc8atvZ7wpYP2YBRQOTe6Po2YQ=");
    }
}
