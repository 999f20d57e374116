//! A lead in words a salesperson acts on: what the customer did and what to do next, where they
//! were, their country's name, and the campaign that brought them. Pure code.

use serde_json::Value;

use super::Lead;

/// What to do about a lead, by Microsoft's action code. A `DNC` lead is a heads-up only: its
/// text never asks anyone to act.
pub fn next_step(code: &str) -> &'static str {
    match code.to_ascii_lowercase().as_str() {
        "plt" => "The customer asked to be contacted: reply within one business day.",
        "ins" => "The customer got the offer (Get it now): welcome them and offer help getting started.",
        "create" => "The customer bought the offer in the Azure portal: confirm the purchase and start onboarding.",
        "starttestdrive" => "The customer started a test drive: follow up while they are trying it.",
        "dnc" => "Do not contact: a heads-up that the customer contacted a cross-listed partner. No action.",
        _ => "Review the lead.",
    }
}

/// The country's name from its ISO 3166 two-letter code (`CZ` → `Czechia`); other text is
/// returned as it came.
pub fn country_name(code: &str) -> String {
    let code = code.trim();
    // The standard's long forms read badly in a notification; the usual names instead.
    let usual = match code.to_ascii_uppercase().as_str() {
        "US" => Some("United States"),
        "GB" => Some("United Kingdom"),
        "KR" => Some("South Korea"),
        "KP" => Some("North Korea"),
        "RU" => Some("Russia"),
        "TW" => Some("Taiwan"),
        "IR" => Some("Iran"),
        "VN" => Some("Vietnam"),
        "LA" => Some("Laos"),
        "SY" => Some("Syria"),
        "BO" => Some("Bolivia"),
        "VE" => Some("Venezuela"),
        "TZ" => Some("Tanzania"),
        "MD" => Some("Moldova"),
        "CD" => Some("Democratic Republic of the Congo"),
        _ => None,
    };
    if let Some(name) = usual {
        return name.to_string();
    }
    if code.len() != 2 {
        return code.to_string();
    }
    match celes::Country::from_alpha2(code) {
        Ok(c) => tidy(c.long_name),
        Err(_) => code.to_string(),
    }
}

/// `The Netherlands Of Something` → `Netherlands of Something`.
fn tidy(long_name: &str) -> String {
    let name = long_name.strip_prefix("The ").unwrap_or(long_name);
    name.split(' ')
        .enumerate()
        .map(|(i, w)| match w {
            "Of" | "And" | "The" if i > 0 => w.to_lowercase(),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Campaign parameters found in `Description`: AppSource passes those of the listing URL, as a
/// JSON object in a string (`{"mktcmpid":"spring","partnerid":"123"}`), as URL parameters
/// (`mktcmpid=spring&partnerid=123`), or as text (`Campaigns: spring-launch`).
pub fn campaign(description: &str) -> Vec<(String, String)> {
    let d = description.trim();
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(d) {
        return obj
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.trim().to_string(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                (!v.is_empty()).then(|| (k.clone(), v))
            })
            .collect();
    }
    if let Some(rest) = d.strip_prefix("Campaigns:").or_else(|| d.strip_prefix("Campaign:")) {
        return rest.split(',').map(str::trim).filter(|c| !c.is_empty()).map(|c| ("campaign".to_string(), c.to_string())).collect();
    }
    let known = ["mktcmpid", "partnerid", "ocid", "utm_source", "utm_medium", "utm_campaign"];
    if d.contains('=') && known.iter().any(|k| d.to_ascii_lowercase().contains(k)) {
        return url::form_urlencoded::parse(d.trim_start_matches('?').as_bytes())
            .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty() && !k.contains(char::is_whitespace))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
    }
    Vec::new()
}

impl Lead {
    /// The campaign as one line (`mktcmpid=spring, partnerid=123`), for the `Campaign` column
    /// and notifications; `None` when the description carries none.
    pub fn campaign(&self) -> Option<String> {
        let pairs = campaign(self.description.as_deref()?);
        if pairs.is_empty() {
            return None;
        }
        Some(pairs.iter().map(|(k, v)| if k == "campaign" { v.clone() } else { format!("{k}={v}") }).collect::<Vec<_>>().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_next_step_and_dnc_asks_for_nothing() {
        for code in ["PLT", "INS", "Create", "StartTestDrive"] {
            assert_ne!(next_step(code), next_step("unknown"), "{code}");
        }
        let dnc = next_step("dnc").to_lowercase();
        assert!(dnc.contains("do not contact") && dnc.contains("no action") && !dnc.contains("reply") && !dnc.contains("follow up"));
    }

    #[test]
    fn country_names() {
        assert_eq!(country_name("CZ"), "Czechia");
        assert_eq!(country_name("pt"), "Portugal");
        assert_eq!(country_name("US"), "United States");
        assert_eq!(country_name("GB"), "United Kingdom");
        assert_eq!(country_name("XX"), "XX");
        assert_eq!(country_name("Czech Republic"), "Czech Republic");
    }

    #[test]
    fn campaigns_in_each_shape() {
        assert_eq!(campaign("Campaigns: spring-launch"), vec![("campaign".to_string(), "spring-launch".to_string())]);
        assert_eq!(
            campaign(r#"{"mktcmpid":"spring","partnerid":"123","empty":""}"#),
            vec![("mktcmpid".to_string(), "spring".to_string()), ("partnerid".to_string(), "123".to_string())]
        );
        assert_eq!(campaign("mktcmpid=spring&partnerid=123").len(), 2);
        assert!(campaign("Please call me after 5pm").is_empty());
        assert!(campaign("a = b").is_empty());
        let lead = Lead { description: Some(r#"{"mktcmpid":"spring","partnerid":"123"}"#.into()), ..Default::default() };
        assert_eq!(lead.campaign().as_deref(), Some("mktcmpid=spring, partnerid=123"));
    }
}
